// Message tracking: look a tracked message up by its tracking id (16 hex digits) or by its
// `message_id` in a vhost, and follow its timeline as it happens (accepted, routed, delivered,
// acked or dead-lettered, transformed, callback attempts): the status long-polls while the
// message is not finished.

import { enc, get } from "../api.js";
import { field, fill, fmt, h, pre, section, values } from "../ui.js";

const WAIT_S = 20;

function describe(e) {
  switch (e.event) {
    case "accepted": return "Accepted by the broker";
    case "routed": return `Routed by exchange '${e.exchange || "(default)"}' to ${e.queues.length ? e.queues.map((q) => `'${q}'`).join(", ") : "no queue"}`;
    case "unroutable": return `Unroutable: exchange '${e.exchange || "(default)"}' had no queue for it`;
    case "refused": return `Refused by full queue '${e.queue}'`;
    case "not_stored": return `Not stored: the disk could not take it${e.queue ? ` (queue '${e.queue}')` : ""}`;
    case "delivered": return `Delivered from '${e.queue}' (attempt ${e.attempt})`;
    case "requeued": return `Requeued to '${e.queue}'`;
    case "acked": return `Acknowledged from '${e.queue}'`;
    case "replied": return "The consumer replied";
    case "transformed": return `Transformed by '${e.transform}' into ${e.outputs} message(s)`;
    case "transform_failed": return `Transform '${e.transform}' failed: ${e.error}`;
    case "split": return `Split by exchange '${e.exchange}' into ${e.parts} part(s)`;
    case "split_failed": return `Split failed at '${e.exchange}': ${e.error}`;
    case "deduplicated": return `Dropped as a duplicate at ${e.at}`;
    case "broke_contract": return `Broke contract '${e.contract}' at exchange '${e.exchange}': ${e.violations.map((v) => `${v.pointer || "(whole message)"} ${v.message}`).join("; ")}`;
    case "dead_lettered": return `Dead-lettered (${e.reason})${e.queue ? ` from '${e.queue}'` : ""} through '${e.exchange || "(default)"}' to ${e.queues.length ? e.queues.map((q) => `'${q}'`).join(", ") : "no queue"}`;
    case "dropped": return `Dropped from '${e.queue}' (${e.reason})`;
    default: return e.event;
  }
}

function timeline(status) {
  const start = status.created_ms;
  const items = status.events.map((e) => h("li", { class: `event ${e.event}`, "data-event": e.event }, h("time", {}, `+${e.at_ms - start} ms`), " ", describe(e)));
  const callback = status.callback;
  if (callback) {
    for (const a of callback.attempts) {
      items.push(h("li", { class: "event callback", "data-event": "callback" }, h("time", {}, `+${a.at_ms - start} ms`), " ", `Callback to ${callback.url}: ${a.status ? `answered ${a.status}` : `no answer (${a.error || "failed"})`}`));
    }
  }
  return h(
    "div",
    { class: "timeline" },
    h("p", { class: `outcome ${status.outcome}`, "data-outcome": status.outcome }, `Outcome: ${status.outcome}${status.finished ? " (finished)" : " (still in progress, following live)"}`),
    h("p", {}, `Tracking id ${status.id}, accepted at ${fmt.time(start)}.`),
    h("ol", { class: "events" }, items),
    status.events_dropped ? h("p", {}, `${status.events_dropped} more event(s) were not kept.`) : null,
    callback ? h("p", {}, `Callback ${callback.state}.`) : null,
    status.reply ? [h("h3", {}, "Reply"), pre(status.reply)] : null,
  );
}

export function trackingPage(main, vhostArg, idArg) {
  const result = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "inline-form" },
    field("Tracking id or message_id", "id", { required: true, value: idArg || "" }),
    field("Vhost (for a message_id)", "vhost", { value: vhostArg || "/" }),
    h("button", { type: "submit", class: "primary" }, "Look up"),
  );
  let generation = 0;

  async function follow(url, mine) {
    let version;
    while (mine === generation) {
      const status = await get(version === undefined ? url : `${url}?wait=${WAIT_S}&version=${version}`);
      if (mine !== generation) return;
      fill(result, timeline(status));
      if (status.finished && !(status.callback && ["waiting", "sending"].includes(status.callback.state))) return;
      version = status.version;
      url = `/api/messages/${enc(status.id)}`;
    }
  }

  async function lookUp(id, vhost) {
    generation += 1;
    const mine = generation;
    fill(result, h("p", {}, "Looking…"));
    const isTrackingId = /^[0-9a-f]{16}$/i.test(id);
    try {
      if (isTrackingId) {
        try {
          await follow(`/api/messages/${enc(id)}`, mine);
          return;
        } catch (e) {
          if (e.status !== 404) throw e;
        }
      }
      const found = await get(`/api/vhosts/${enc(vhost)}/messages?message_id=${enc(id)}`);
      await follow(`/api/messages/${enc(found.id)}`, mine);
    } catch (e) {
      if (mine !== generation) return;
      fill(result, h("p", { class: "notice error", role: "alert" }, e.status === 404 ? `No tracked message with the id '${id}' in vhost '${vhost}'. Only tracked messages are kept (HTTP publishes, and AMQP ones with x-warren-track), for the tracking retention.` : e.message));
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = values(form);
    history.replaceState(null, "", `#/tracking/${enc(v.vhost)}/${enc(v.id.trim())}`);
    lookUp(v.id.trim(), v.vhost);
  });
  main.append(h("h1", {}, "Message tracking"), h("p", {}, "The life of one tracked message, event by event."), section("Find a message", form), result);
  if (idArg) lookUp(idArg, vhostArg || "/");
  return () => {
    generation += 1;
  };
}
