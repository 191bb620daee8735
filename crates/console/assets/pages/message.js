// One message as a browse shows it: routing, properties, headers, its x-death history (why and
// where it died, how often) and its body, pretty-printed when it is JSON.

import { facts, fmt, h, pre } from "../ui.js";

function body(m) {
  if (m.payload_encoding !== "string") return pre(`(binary, ${fmt.bytes(m.payload_bytes)}, base64)\n${m.payload}`);
  try {
    return pre(JSON.parse(m.payload));
  } catch {
    return pre(m.payload);
  }
}

/** The x-death entries of a message, newest first (only well-formed ones: a publisher may
 * have written anything there). */
export function deaths(m) {
  const headers = (m.properties && m.properties.headers) || {};
  const list = Array.isArray(headers["x-death"]) ? headers["x-death"] : [];
  return list.filter((d) => d && typeof d === "object" && !Array.isArray(d));
}

function when(seconds) {
  const ms = Number(seconds) * 1000;
  return Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? `, last at ${fmt.time(ms)}` : "";
}

/** A message as a browse shows it; one the view cannot draw is shown as its raw JSON. */
export function messageView(m, options = {}) {
  try {
    return drawMessage(m, options);
  } catch {
    return h("details", { class: "message" }, h("summary", {}, `#${m.position ?? ""} (shown raw)`), pre(m));
  }
}

function drawMessage(m, { open = false }) {
  const props = { ...(m.properties || {}) };
  const headers = { ...(props.headers || {}) };
  delete props.headers;
  const death = deaths(m);
  delete headers["x-death"];
  const truncated = m.payload_encoding === "string" && m.payload_bytes > new TextEncoder().encode(m.payload).length;
  return h(
    "details",
    { class: "message", open },
    h("summary", {}, `#${m.position ?? ""} ${m.routing_key ? `key ${m.routing_key}` : ""} · ${fmt.bytes(m.payload_bytes)}${m.death_reason ? ` · died: ${m.death_reason}` : ""}${m.redelivered ? " · redelivered" : ""}`),
    facts([
      ["Exchange", m.exchange || "(default exchange)"],
      ["Routing key", m.routing_key || "–"],
      ["Message id", props.message_id || "–"],
      ["Content type", props.content_type || "–"],
    ]),
    death.length
      ? [
          h("h3", {}, "Dead-letter history (x-death)"),
          h(
            "ol",
            { class: "deaths" },
            death.map((d) => h("li", {}, `${d.reason ?? "?"} in queue '${d.queue ?? "?"}' (from exchange '${d.exchange || "(default)"}', routing keys ${JSON.stringify(d["routing-keys"] || [])}) ${d.count ?? 1} time(s)${d.time ? when(d.time) : ""}`)),
          ),
        ]
      : null,
    Object.keys(headers).length ? [h("h3", {}, "Headers"), pre(headers)] : null,
    h("h3", {}, "Properties"),
    pre(props),
    h("h3", {}, truncated ? "Body (cut short)" : "Body"),
    body(m),
  );
}
