// Publishing a test message from the console: through an exchange with a routing key, with a
// body, content type, message id, headers and persistence, answered with whether it routed.

import { api, enc } from "../api.js";
import { act, field, h, parseJson, values } from "../ui.js";

/** The form; `exchange` "" is the default exchange, where the routing key names the queue. */
export function publishForm(vhost, exchange, routingKey = "", hint = undefined) {
  const form = h(
    "form",
    { class: "publish" },
    field("Routing key", "routing_key", { value: routingKey, hint }),
    field("Body", "payload", { type: "textarea", value: '{"hello": "world"}' }),
    field("Content type", "content_type", { value: "application/json" }),
    field("Message id", "message_id"),
    field("Headers (JSON)", "headers", { type: "textarea" }),
    field("Persistent", "persistent", { type: "checkbox", value: true }),
    h("button", { type: "submit", class: "primary" }, "Publish"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(form);
    await act(
      () => {
        const properties = { delivery_mode: v.persistent ? 2 : 1 };
        if (v.content_type) properties.content_type = v.content_type;
        if (v.message_id) properties.message_id = v.message_id;
        const headers = parseJson(v.headers, "Headers");
        if (headers) properties.headers = headers;
        const body = { properties, routing_key: v.routing_key, payload: v.payload, payload_encoding: "string" };
        return api("POST", `/api/exchanges/${enc(vhost)}/${enc(exchange || "amq.default")}/publish`, body);
      },
      (answer) => (answer && answer.routed ? "Published: the message was routed." : "Published, but no queue took it (nothing is bound with that routing key)."),
    );
  });
  return form;
}
