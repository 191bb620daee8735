// One queue: its counts and rates (live), consumers, bindings, arguments and policy; a look at
// its messages without taking them; purge, delete, and publishing a test message to it.

import { api, enc, get } from "../api.js";
import { messageCharts } from "../chart.js";
import { act, confirmAction, every, facts, field, fill, fmt, h, pre, section, table, values } from "../ui.js";
import { messageView } from "./message.js";
import { publishForm } from "./publish.js";

const REFRESH_MS = 2000;

export function queuePage(main, vhost, name) {
  const path = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const counts = h("div");
  const consumers = h("div");
  const bindings = h("div");
  const settings = h("div");
  const peeked = h("div", { class: "messages" });
  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  const charts = messageCharts("Rates", "Messages");

  const purge = h("button", { type: "button", class: "danger" }, "Purge");
  purge.addEventListener("click", async () => {
    if (!(await confirmAction(`Purge queue '${name}'? Every ready message in it is deleted.`, "Purge"))) return;
    await act(() => api("DELETE", `${path}/contents`), `Purged '${name}'.`);
  });
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!(await confirmAction(`Delete queue '${name}' and every message in it?`, "Delete"))) return;
    const done = await act(() => api("DELETE", path), `Deleted queue '${name}'.`);
    if (done !== undefined) location.hash = "#/queues";
  });

  const peekCount = field("How many", "count", { type: "number", value: "10" });
  const peekForm = h("form", { class: "inline-form" }, peekCount, h("button", { type: "submit" }, "Show messages"));
  peekForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const count = Math.min(1000, Math.max(1, Number(values(peekForm).count) || 10));
    const answer = await act(() => get(`${path}/messages?count=${count}&truncate=65536`));
    if (!answer) return;
    fill(
      peeked,
      h("p", {}, `${answer.messages.length} of ${fmt.count(answer.messages_ready)} ready messages, first in line first. They stay in the queue.`),
      answer.messages.map((m) => messageView(m)),
    );
  });

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/queues" }, "Queues"), ` › ${vhost} › `),
    h("h1", {}, `Queue ${name}`),
    h("div", { class: "actions" }, purge, remove),
    error,
    charts.el,
    h("div", { class: "columns" }, section("Counts", counts), section("Arguments and policy", settings)),
    section("Consumers", consumers),
    section("Bindings", bindings),
    section("Messages", peekForm, peeked),
    section("Publish a test message", publishForm(vhost, "", name, "Published through the default exchange: the routing key is the queue's name.")),
  );

  const stopBindings = every(10000, async () => {
    try {
      const list = await get(`${path}/bindings`);
      fill(
        bindings,
        list.length
          ? table(["Exchange", "Routing key", "Arguments"], list.map((b) => [h("a", { href: `#/exchange/${enc(vhost)}/${enc(b.source || "amq.default")}` }, b.source || "(default exchange)"), b.routing_key, JSON.stringify(b.arguments)]))
          : h("p", {}, "No bindings."),
      );
    } catch (e) {
      fill(bindings, e.message);
    }
  });
  const stopQueue = every(REFRESH_MS, async () => {
    let q;
    try {
      q = await get(path);
      error.hidden = true;
    } catch (e) {
      error.hidden = false;
      fill(error, e.message);
      return;
    }
    const s = q.message_stats || {};
    charts.push(s, q.messages_ready, q.messages_unacknowledged);
    fill(
      counts,
      facts([
        ["Ready", fmt.count(q.messages_ready)],
        ["Unacknowledged", fmt.count(q.messages_unacknowledged)],
        ["Total", fmt.count(q.messages)],
        ["Consumers", fmt.count(q.consumers)],
        ["Type", q.type],
        ["State", q.state],
        ["Durable", q.durable ? "yes" : "no"],
        ["Published in all", fmt.count(s.publish)],
      ]),
    );
    fill(
      settings,
      facts([
        ["Policy", q.policy || "none"],
        ["Operator policy", q.operator_policy || "none"],
      ]),
      h("h3", {}, "Arguments"),
      pre(q.arguments || {}),
      h("h3", {}, "Effective policy"),
      pre(q.effective_policy_definition || {}),
    );
    const list = q.consumer_details || [];
    fill(
      consumers,
      list.length
        ? table(["Tag", "Channel", "Manual ack", "Prefetch"], list.map((c) => [c.consumer_tag, (c.channel_details || {}).name || "–", c.ack_required ? "yes" : "no", c.prefetch_count]))
        : h("p", {}, "No consumers."),
    );
  });
  return () => {
    stopQueue();
    stopBindings();
  };
}
