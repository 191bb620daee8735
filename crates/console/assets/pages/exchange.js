// One exchange: its type, arguments and policy; the bindings from it and to it (add and remove
// them); publishing a test message through it; deleting it.

import { api, enc, get } from "../api.js";
import { act, confirmAction, facts, field, fill, h, parseJson, pre, section, table, values } from "../ui.js";
import { publishForm } from "./publish.js";

export function exchangePage(main, vhost, name) {
  const path = `/api/exchanges/${enc(vhost)}/${enc(name)}`;
  const shown = name === "amq.default" ? "(default exchange)" : name;
  const about = h("div");
  const from = h("div");
  const to = h("div");
  const destination = (b) => (b.destination_type === "queue" ? h("a", { href: `#/queue/${enc(vhost)}/${enc(b.destination)}` }, b.destination) : `exchange ${b.destination}`);
  const unbind = (b) =>
    h(
      "button",
      {
        type: "button",
        class: "small danger",
        "aria-label": `Remove the binding to ${b.destination} with key '${b.routing_key}'`,
        onclick: async () => {
          if (!(await confirmAction(`Remove the binding from '${b.source}' to '${b.destination}' with routing key '${b.routing_key}'?`, "Remove"))) return;
          const kind = b.destination_type === "queue" ? "q" : "e";
          const done = await act(() => api("DELETE", `/api/bindings/${enc(vhost)}/e/${enc(b.source)}/${kind}/${enc(b.destination)}/${enc(b.properties_key)}`), "Binding removed.");
          if (done !== undefined) load();
        },
      },
      "Remove",
    );

  async function load() {
    try {
      const [x, source, dest] = await Promise.all([get(path), get(`${path}/bindings/source`), get(`${path}/bindings/destination`)]);
      fill(
        about,
        facts([
          ["Type", x.type],
          ["Durable", x.durable ? "yes" : "no"],
          ["Auto-delete", x.auto_delete ? "yes" : "no"],
          ["Internal", x.internal ? "yes" : "no"],
          ["Policy", x.policy || "none"],
        ]),
        h("h3", {}, "Arguments"),
        pre(x.arguments || {}),
      );
      const canBind = name !== "amq.default";
      fill(from, source.length ? table(["To", "Routing key", "Arguments", ""], source.map((b) => [destination(b), b.routing_key, JSON.stringify(b.arguments), canBind ? unbind(b) : ""])) : h("p", {}, "No bindings from this exchange."));
      fill(to, dest.length ? table(["From", "Routing key", "Arguments"], dest.map((b) => [b.source, b.routing_key, JSON.stringify(b.arguments)])) : h("p", {}, "No exchange is bound to this one."));
    } catch (e) {
      fill(about, h("p", { class: "notice error", role: "alert" }, e.message));
    }
  }

  const bindForm = h(
    "form",
    { class: "inline-form" },
    field("Queue", "queue", { required: true }),
    field("Routing key", "routing_key"),
    field("Arguments (JSON)", "arguments"),
    h("button", { type: "submit" }, "Bind"),
  );
  bindForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(bindForm);
    const done = await act(
      () => api("POST", `/api/bindings/${enc(vhost)}/e/${enc(name)}/q/${enc(v.queue)}`, { routing_key: v.routing_key, arguments: parseJson(v.arguments, "Arguments") || {} }),
      `Bound queue '${v.queue}'.`,
    );
    if (done !== undefined) load();
  });

  const remove = h("button", { type: "button", class: "danger", hidden: name === "amq.default" || name.startsWith("amq.") }, "Delete");
  remove.addEventListener("click", async () => {
    if (!(await confirmAction(`Delete exchange '${name}' and its bindings?`, "Delete"))) return;
    const done = await act(() => api("DELETE", path), `Deleted exchange '${name}'.`);
    if (done !== undefined) location.hash = "#/exchanges";
  });

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/exchanges" }, "Exchanges"), ` › ${vhost} › `),
    h("h1", {}, `Exchange ${shown}`),
    h("div", { class: "actions" }, remove),
    section("Settings", about),
    section("Bindings from this exchange", from, name === "amq.default" ? h("p", {}, "Every queue is bound to the default exchange by its name.") : bindForm),
    section("Bindings to this exchange", to),
    section("Publish a test message", publishForm(vhost, name === "amq.default" ? "" : name)),
  );
  load();
  return () => {};
}
