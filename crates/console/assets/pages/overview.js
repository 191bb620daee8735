// The overview: live message rates and queued messages, the node's figures and its alarms,
// object counts and listeners, refreshed every two seconds.

import { get } from "../api.js";
import { messageCharts } from "../chart.js";
import { every, facts, fill, fmt, h, section } from "../ui.js";

const REFRESH_MS = 2000;

export function overviewPage(main) {
  const charts = messageCharts("Message rates", "Queued messages");
  const node = h("div");
  const totals = h("div");
  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  main.append(
    h("h1", {}, "Overview"),
    error,
    charts.el,
    h("div", { class: "columns" }, section("Node", node), section("Objects", totals)),
  );
  return every(REFRESH_MS, async () => {
    try {
      const [overview, nodes] = await Promise.all([get("/api/overview"), get("/api/nodes")]);
      error.hidden = true;
      const q = overview.queue_totals || {};
      charts.push(overview.message_stats, q.messages_ready, q.messages_unacknowledged);
      const n = nodes[0] || {};
      fill(
        node,
        facts([
          ["Name", n.name],
          ["Version", `${overview.product_name} ${overview.product_version} (speaks RabbitMQ ${overview.rabbitmq_version}'s API)`],
          ["Up for", fmt.duration(n.uptime || 0)],
          ["Memory", `${fmt.bytes(n.mem_used)} of ${fmt.bytes(n.mem_limit)} allowed`],
          ["Memory alarm", n.mem_alarm ? "RAISED: publishers are blocked" : "none"],
          ["Disk alarm", n.disk_free_alarm ? `RAISED: under ${fmt.bytes(n.disk_free_limit)} free` : `none (limit ${fmt.bytes(n.disk_free_limit)})`],
          ["Processors", n.processors],
          ["Listeners", (overview.listeners || []).map((l) => `${l.protocol} :${l.port}`).join(", ")],
        ]),
      );
      const o = overview.object_totals || {};
      fill(
        totals,
        facts([
          ["Connections", fmt.count(o.connections)],
          ["Channels", fmt.count(o.channels)],
          ["Queues", fmt.count(o.queues)],
          ["Consumers", fmt.count(o.consumers)],
          ["Exchanges", fmt.count(o.exchanges)],
          ["Messages queued", fmt.count(q.messages)],
        ]),
      );
    } catch (e) {
      error.hidden = false;
      fill(error, e.message);
    }
  });
}
