// The object lists (queues, exchanges, connections, channels, consumers, vhosts, users,
// policies), each with its columns, the form that adds one, and the action on a row.

import { api, enc, get } from "../api.js";
import { listView } from "../table.js";
import { act, at, confirmAction, field, fmt, h, parseJson, values } from "../ui.js";

const link = (href, text) => h("a", { href }, text);
const rate = (path) => (item) => fmt.rate(at(item, path) ?? 0);
const tags = (item) => (Array.isArray(item.tags) ? item.tags.join(", ") : item.tags || "") || "–";

/** The vhosts a form may choose from (asked each time a form is drawn: they change). */
async function vhosts() {
  const list = await get("/api/vhosts?page=1&page_size=500&sort=name&columns=name");
  return list.items.map((v) => v.name);
}

/** A "Delete" (or `verb`) button for one row: asks first, then reloads the list. */
function remove(list, what, path, verb = "Delete", done = "Deleted") {
  return h(
    "button",
    {
      type: "button",
      class: "small danger",
      "aria-label": `${verb} ${what}`,
      onclick: async () => {
        if (!(await confirmAction(`${verb} ${what}? This cannot be undone.`, verb))) return;
        await act(() => api("DELETE", path), `${done} ${what}.`);
        list.reload();
      },
    },
    verb,
  );
}

/** A form that adds an object: fields from `fields(vhostNames)`, then `submit(values)`. */
function adder(title, fields, submit, list) {
  const form = h("form", { class: "adder" });
  const details = h("details", {}, h("summary", {}, title), form);
  vhosts()
    .catch(() => ["/"])
    .then((names) => {
      form.append(...fields(names), h("button", { type: "submit", class: "primary" }, title));
    });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const done = await act(() => submit(values(form)), "Done.");
    if (done !== undefined) list.reload();
  });
  return details;
}

const specs = {
  queues: {
    title: "Queues",
    noun: "queue",
    path: "/api/queues",
    sort: "name",
    columns: () => [
      { label: "Name", key: "name", value: (q) => link(`#/queue/${enc(q.vhost)}/${enc(q.name)}`, q.name) },
      { label: "Vhost", key: "vhost" },
      { label: "Type", key: "type", minor: true },
      { label: "Ready", key: "messages_ready", numeric: true },
      { label: "Unacked", key: "messages_unacknowledged", numeric: true, minor: true },
      { label: "Total", key: "messages", numeric: true, minor: true },
      { label: "Publish", key: "message_stats.publish_details.rate", numeric: true, value: rate("message_stats.publish_details.rate") },
      { label: "Deliver", key: "message_stats.deliver_get_details.rate", numeric: true, minor: true, value: rate("message_stats.deliver_get_details.rate") },
      { label: "Consumers", key: "consumers", numeric: true },
      { label: "Policy", key: "policy", minor: true },
    ],
    add: (list) =>
      adder(
        "Add a queue",
        (names) => [
          field("Vhost", "vhost", { type: "select", options: names, value: "/" }),
          field("Name", "name", { required: true }),
          field("Durable", "durable", { type: "checkbox", value: true }),
          field("Arguments (JSON)", "arguments", { type: "textarea", hint: 'For example {"x-max-length": 1000, "x-dead-letter-exchange": "dlx"}' }),
        ],
        (v) => api("PUT", `/api/queues/${enc(v.vhost)}/${enc(v.name)}`, { durable: v.durable, auto_delete: false, arguments: parseJson(v.arguments, "Arguments") || {} }),
        list,
      ),
  },
  exchanges: {
    title: "Exchanges",
    noun: "exchange",
    path: "/api/exchanges",
    sort: "name",
    columns: (list) => [
      { label: "Name", key: "name", value: (x) => link(`#/exchange/${enc(x.vhost)}/${enc(x.name || "amq.default")}`, x.name || "(default exchange)") },
      { label: "Vhost", key: "vhost" },
      { label: "Type", key: "type", minor: true },
      { label: "Durable", key: "durable", minor: true },
      { label: "Internal", key: "internal", minor: true },
      { label: "Arguments", key: "arguments", minor: true },
      { label: "", value: (x) => (x.name && !x.name.startsWith("amq.") ? remove(list, `exchange '${x.name}'`, `/api/exchanges/${enc(x.vhost)}/${enc(x.name)}`) : "") },
    ],
    add: (list) =>
      adder(
        "Add an exchange",
        (names) => [
          field("Vhost", "vhost", { type: "select", options: names, value: "/" }),
          field("Name", "name", { required: true }),
          field("Type", "type", { type: "select", options: ["direct", "fanout", "topic", "headers", "x-delayed-message"], value: "direct" }),
          field("Durable", "durable", { type: "checkbox", value: true }),
          field("Arguments (JSON)", "arguments", { type: "textarea" }),
        ],
        (v) => api("PUT", `/api/exchanges/${enc(v.vhost)}/${enc(v.name)}`, { type: v.type, durable: v.durable, arguments: parseJson(v.arguments, "Arguments") || {} }),
        list,
      ),
  },
  connections: {
    title: "Connections",
    noun: "connection",
    path: "/api/connections",
    sort: "name",
    columns: (list) => [
      { label: "Name", key: "name" },
      { label: "User", key: "user" },
      { label: "Vhost", key: "vhost" },
      { label: "Protocol", key: "protocol", minor: true },
      { label: "Channels", key: "channels", numeric: true },
      { label: "State", key: "state" },
      { label: "TLS", key: "ssl", minor: true },
      { label: "", value: (c) => remove(list, `connection '${c.name}'`, `/api/connections/${enc(c.name)}`, "Close", "Closed") },
    ],
  },
  channels: {
    title: "Channels",
    noun: "channel",
    path: "/api/channels",
    sort: "name",
    columns: () => [
      { label: "Name", key: "name" },
      { label: "User", key: "user" },
      { label: "Vhost", key: "vhost" },
      { label: "Prefetch", key: "prefetch_count", numeric: true, minor: true },
      { label: "Unacked", key: "messages_unacknowledged", numeric: true, minor: true },
      { label: "Consumers", key: "consumer_count", numeric: true },
      { label: "Confirms", key: "confirm", minor: true },
      { label: "State", key: "state" },
    ],
  },
  consumers: {
    title: "Consumers",
    noun: "consumer",
    path: "/api/consumers",
    filter: false,
    sort: "consumer_tag",
    columns: () => [
      { label: "Tag", key: "consumer_tag" },
      { label: "Queue", key: "queue.name", value: (c) => link(`#/queue/${enc(at(c, "queue.vhost"))}/${enc(at(c, "queue.name"))}`, at(c, "queue.name")) },
      { label: "Vhost", key: "queue.vhost" },
      { label: "Channel", key: "channel_details.name", minor: true },
      { label: "Manual ack", key: "ack_required" },
      { label: "Prefetch", key: "prefetch_count", numeric: true, minor: true },
      { label: "Active", key: "active" },
    ],
  },
  vhosts: {
    title: "Virtual hosts",
    noun: "vhost",
    path: "/api/vhosts",
    sort: "name",
    columns: (list) => [
      { label: "Name", key: "name" },
      { label: "Ready", key: "messages_ready", numeric: true },
      { label: "Unacked", key: "messages_unacknowledged", numeric: true, minor: true },
      { label: "Total", key: "messages", numeric: true, minor: true },
      { label: "Description", key: "description", minor: true },
      { label: "", value: (v) => (v.name === "/" ? "" : remove(list, `vhost '${v.name}' and everything in it`, `/api/vhosts/${enc(v.name)}`)) },
    ],
    add: (list) =>
      adder("Add a vhost", () => [field("Name", "name", { required: true }), field("Description", "description")], (v) => api("PUT", `/api/vhosts/${enc(v.name)}`, { description: v.description }), list),
  },
  users: {
    title: "Users",
    noun: "user",
    path: "/api/users",
    sort: "name",
    columns: (list) => [
      { label: "Name", key: "name" },
      { label: "Tags", key: "tags", value: tags },
      { label: "Limits", key: "limits", minor: true },
      { label: "", value: (u) => remove(list, `user '${u.name}'`, `/api/users/${enc(u.name)}`) },
    ],
    add: (list) =>
      adder(
        "Add a user",
        () => [
          field("Name", "name", { required: true }),
          field("Password", "password", { type: "password", required: true }),
          field("Tags", "tags", { hint: "Comma-separated: administrator, monitoring, policymaker, management" }),
        ],
        (v) => api("PUT", `/api/users/${enc(v.name)}`, { password: v.password, tags: v.tags }),
        list,
      ),
  },
  policies: {
    title: "Policies",
    noun: "policy",
    path: "/api/policies",
    sort: "name",
    columns: (list) => [
      { label: "Name", key: "name" },
      { label: "Vhost", key: "vhost" },
      { label: "Pattern", key: "pattern" },
      { label: "Applies to", key: "apply-to", minor: true },
      { label: "Priority", key: "priority", numeric: true, minor: true },
      { label: "Definition", key: "definition" },
      { label: "", value: (p) => remove(list, `policy '${p.name}'`, `/api/policies/${enc(p.vhost)}/${enc(p.name)}`) },
    ],
    add: (list) =>
      adder(
        "Add or replace a policy",
        (names) => [
          field("Vhost", "vhost", { type: "select", options: names, value: "/" }),
          field("Name", "name", { required: true }),
          field("Pattern (regular expression)", "pattern", { required: true, value: ".*" }),
          field("Applies to", "apply_to", { type: "select", options: ["queues", "exchanges", "all"], value: "queues" }),
          field("Priority", "priority", { type: "number", value: "0" }),
          field("Definition (JSON)", "definition", { type: "textarea", required: true, hint: 'For example {"max-length": 10000, "dead-letter-exchange": "dlx"}' }),
        ],
        (v) =>
          api("PUT", `/api/policies/${enc(v.vhost)}/${enc(v.name)}`, {
            pattern: v.pattern,
            "apply-to": v.apply_to,
            priority: Number(v.priority) || 0,
            definition: parseJson(v.definition, "The definition") || {},
          }),
        list,
      ),
  },
};

export function listPage(main, name) {
  const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
  if (!spec) {
    main.append(h("h1", {}, "No such page"), h("p", {}, "Choose a page from the menu."));
    return () => {};
  }
  const holder = { reload: () => {} };
  const list = listView({ ...spec, columns: spec.columns(holder) });
  holder.reload = list.reload;
  main.append(h("h1", {}, spec.title), spec.add ? spec.add(holder) : null, list.el);
  return list.stop;
}
