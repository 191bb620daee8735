// Dead letters: find the dead-letter queues (what queues' and policies' dead-letter exchanges
// and contracts lead to), browse one grouped by why and where its messages died, inspect one,
// and replay the chosen ones, or all, to the queue each died in.

import { api, enc, get } from "../api.js";
import { act, confirmAction, field, fill, fmt, h, section, table, values } from "../ui.js";
import { deaths, messageView } from "./message.js";

/** Most messages one browse shows (the API's own bound). */
const BROWSE = 1000;
/** Queues looked at to find dead-letter queues, and exchanges asked for their bindings. */
const SCAN_QUEUES = 500;
const SCAN_EXCHANGES = 50;

export function deadLettersPage(main, vhost, queue) {
  if (vhost !== undefined && queue !== undefined) return browsePage(main, vhost, queue);
  return finderPage(main);
}

function finderPage(main) {
  const found = h("div", {}, h("p", {}, "Looking for dead-letter queues…"));
  const form = h(
    "form",
    { class: "inline-form" },
    field("Vhost", "vhost", { value: "/" }),
    field("Queue", "queue", { required: true }),
    h("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = values(form);
    location.hash = `#/dead-letters/${enc(v.vhost)}/${enc(v.queue)}`;
  });
  main.append(h("h1", {}, "Dead letters"), section("Dead-letter queues", found), section("Open any queue", form));
  findDeadLetterQueues()
    .then((list) => {
      fill(
        found,
        list.length
          ? table(
              ["Queue", "Vhost", "Messages", "Dead letters of"],
              list.map((d) => [h("a", { href: `#/dead-letters/${enc(d.vhost)}/${enc(d.name)}` }, d.name), d.vhost, fmt.count(d.messages), d.from.join(", ")]),
            )
          : h("p", {}, "No queue receives dead letters: no queue, policy or contract names a dead-letter exchange that leads to one."),
      );
    })
    .catch((e) => fill(found, h("p", { class: "notice error" }, e.message)));
  return () => {};
}

async function findDeadLetterQueues() {
  const [queues, contracts] = await Promise.all([get(`/api/queues?page=1&page_size=${SCAN_QUEUES}&sort=name`), get("/api/contracts").catch(() => [])]);
  const targets = new Map(); // "vhost\0exchange\0key" -> names of what dead-letters there
  const note = (v, exchange, key, from) => {
    const id = `${v}\u0000${exchange}\u0000${key ?? ""}`;
    if (!targets.has(id)) targets.set(id, []);
    targets.get(id).push(from);
  };
  for (const q of queues.items) {
    const args = q.arguments || {};
    const policy = q.effective_policy_definition || {};
    const dlx = args["x-dead-letter-exchange"] ?? policy["dead-letter-exchange"];
    if (dlx === undefined || dlx === null) continue;
    note(q.vhost, dlx, args["x-dead-letter-routing-key"] ?? policy["dead-letter-routing-key"], `queue ${q.name}`);
  }
  for (const c of Array.isArray(contracts) ? contracts : contracts.items || []) {
    if (c.dead_letter_exchange !== null && c.dead_letter_exchange !== undefined) note(c.vhost, c.dead_letter_exchange, c.dead_letter_routing_key, `contract ${c.name}`);
  }
  const dlqs = new Map();
  const add = (v, name, from) => {
    const id = `${v}\u0000${name}`;
    if (!dlqs.has(id)) dlqs.set(id, { vhost: v, name, from: new Set() });
    from.forEach((f) => dlqs.get(id).from.add(f));
  };
  const asked = [...targets.entries()].slice(0, SCAN_EXCHANGES);
  await Promise.all(
    asked.map(async ([id, from]) => {
      const [v, exchange, key] = id.split("\u0000");
      if (exchange === "") {
        if (key) add(v, key, from);
        return;
      }
      const bindings = await get(`/api/exchanges/${enc(v)}/${enc(exchange)}/bindings/source`).catch(() => []);
      for (const b of bindings) if (b.destination_type === "queue") add(v, b.destination, from);
    }),
  );
  const list = [...dlqs.values()].map((d) => ({ ...d, from: [...d.from] }));
  const counts = await Promise.all(list.map((d) => get(`/api/queues/${enc(d.vhost)}/${enc(d.name)}`).then((q) => q.messages, () => undefined)));
  list.forEach((d, i) => (d.messages = counts[i]));
  return list.filter((d) => d.messages !== undefined);
}

/** Where a dead letter came from: the queue it died in, or the exchange whose contract it broke. */
function sourceOf(m) {
  const last = deaths(m)[0] || {};
  if (last.queue) return `queue ${last.queue}`;
  if (last.exchange !== undefined) return `exchange ${last.exchange || "(default)"}`;
  return "unknown";
}

function browsePage(main, vhost, queue) {
  const path = `/api/queues/${enc(vhost)}/${enc(queue)}`;
  const selected = new Set();
  const groups = h("div");
  const summary = h("div");
  const status = h("p", { "aria-live": "polite" });
  const replaySelected = h("button", { type: "button", class: "primary", disabled: true }, "Replay selected");
  const reasonChoice = h("select", { "aria-label": "Which messages to replay" }, h("option", { value: "" }, "every reason"));
  const replayAll = h("button", { type: "button", class: "danger" }, "Replay all");

  function updateSelection() {
    replaySelected.disabled = selected.size === 0;
    replaySelected.textContent = `Replay selected (${selected.size})`;
  }

  async function replay(body, what) {
    if (!(await confirmAction(`Replay ${what} to the queue each died in? They leave this queue.`, "Replay"))) return;
    const report = await act(
      () => api("POST", `${path}/move`, { to: "source", ...body }),
      (r) => `Replayed ${fmt.count(r.moved)} message(s)` + (r.not_moved ? `; ${fmt.count(r.not_moved)} could not be (their source queue is gone, or they still break their contract) and stayed here.` : "."),
    );
    if (report) load();
  }
  replaySelected.addEventListener("click", () => replay({ seqs: [...selected] }, `${selected.size} selected message(s)`));
  replayAll.addEventListener("click", () => {
    const reason = reasonChoice.value;
    replay(reason ? { reason } : {}, reason ? `every message that died as '${reason}'` : "every message in this queue");
  });

  async function load() {
    selected.clear();
    updateSelection();
    let answer;
    try {
      answer = await get(`${path}/messages?count=${BROWSE}&truncate=65536`);
    } catch (e) {
      fill(status, e.message);
      return;
    }
    const byGroup = new Map();
    for (const m of answer.messages) {
      const key = `${m.death_reason || "not dead-lettered"}\u0000${sourceOf(m)}`;
      if (!byGroup.has(key)) byGroup.set(key, []);
      byGroup.get(key).push(m);
    }
    fill(status, `${fmt.count(answer.messages_ready)} ready message(s)` + (answer.messages_ready > answer.messages.length ? `; the first ${fmt.count(answer.messages.length)} are shown.` : "."));
    const reasons = [...new Set(answer.messages.map((m) => m.death_reason).filter(Boolean))];
    fill(reasonChoice, h("option", { value: "" }, "every reason"), reasons.map((r) => h("option", { value: r }, `only '${r}'`)));
    fill(summary, byGroup.size ? table(["Reason", "Source", "Messages"], [...byGroup.entries()].map(([key, list]) => [...key.split("\u0000"), fmt.count(list.length)])) : h("p", {}, "This queue is empty."));
    fill(
      groups,
      [...byGroup.entries()].map(([key, list]) => {
        const [reason, source] = key.split("\u0000");
        return h(
          "section",
          { class: "group" },
          h("h3", {}, `${reason} · ${source} · ${list.length}`),
          list.map((m) => {
            const box = h("input", { type: "checkbox", "aria-label": `Select message #${m.position}`, "data-seq": m.seq });
            box.addEventListener("change", () => {
              if (box.checked) selected.add(m.seq);
              else selected.delete(m.seq);
              updateSelection();
            });
            return h("div", { class: "pick" }, box, messageView(m));
          }),
        );
      }),
    );
  }

  const reload = h("button", { type: "button", onclick: load }, "Reload");
  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/dead-letters" }, "Dead letters"), ` › ${vhost} › `),
    h("h1", {}, `Dead letters in ${queue}`),
    status,
    h("div", { class: "actions" }, replaySelected, reasonChoice, replayAll, reload, h("a", { href: `#/queue/${enc(vhost)}/${enc(queue)}` }, "Queue page")),
    section("By reason and source", summary),
    section("Messages", groups),
  );
  load();
  return () => {};
}
