// Contracts and transforms: the rules the broker applies to messages. Each has a list, a page
// that shows it (schemas by version, or the program), and a test of a sample message against
// it that publishes nothing.

import { api, enc, get } from "../api.js";
import { listView } from "../table.js";
import { act, facts, field, fill, h, parseJson, pre, section, values } from "../ui.js";

/**
 * A "test a sample message" form: the body and routing key, then `extra` fields; on submit it
 * posts `sampleOf(values)` to `${path}/test` and draws `show(answer)` under the form.
 */
function sampleTester(path, extra, button, sampleOf, show) {
  const outcome = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "sample" },
    field("Sample body (JSON)", "body", { type: "textarea", required: true, value: "{}" }),
    field("Routing key", "routing_key"),
    extra,
    h("button", { type: "submit", class: "primary" }, button),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(form);
    const answer = await act(() => {
      const sample = { body: parseJson(v.body, "The sample body"), routing_key: v.routing_key, ...sampleOf(v) };
      return api("POST", `${path}/test`, sample);
    });
    if (answer) fill(outcome, show(answer));
  });
  return section("Test a sample message", form, outcome);
}

const link = (kind, item) => h("a", { href: `#/${kind}/${enc(item.vhost)}/${enc(item.name)}` }, item.name);

export function contractsPage(main, vhost, name) {
  if (name === undefined) {
    const list = listView({
      path: "/api/contracts",
      noun: "contract",
      sort: "name",
      columns: [
        { label: "Name", key: "name", value: (c) => link("contracts", c) },
        { label: "Vhost", key: "vhost" },
        { label: "Exchange", key: "exchange" },
        { label: "Routing key", key: "routing_key" },
        { label: "Version", key: "version", numeric: true },
        { label: "On violation", key: "on_violation" },
        { label: "Compatibility", key: "compatibility" },
      ],
    });
    main.append(h("h1", {}, "Contracts"), h("p", {}, "Schemas that messages published to an exchange must meet; a message that breaks one is refused or dead-lettered with the reason."), list.el);
    return list.stop;
  }
  const path = `/api/contracts/${enc(vhost)}/${enc(name)}`;
  const about = h("div");
  const tester = sampleTester(
    path,
    [field("Content type", "content_type", { value: "application/json" }), field("Message type", "type")],
    "Check the sample",
    (v) => ({ ...(v.content_type ? { content_type: v.content_type } : {}), ...(v.type ? { type: v.type } : {}) }),
    (answer) => [
      h("p", { class: `verdict ${answer.valid ? "valid" : "invalid"}`, "data-valid": String(answer.valid) }, answer.valid ? `Valid against version ${answer.version}.` : `Breaks version ${answer.version}:`),
      answer.valid ? null : h("ul", {}, answer.violations.map((x) => h("li", {}, `${x.pointer || "(the whole message)"}: ${x.message}`))),
      answer.covers ? null : h("p", {}, "Note: the contract does not cover this routing key or type, so a real publish of it would not be checked."),
    ],
  );
  main.append(h("p", { class: "crumbs" }, h("a", { href: "#/contracts" }, "Contracts"), ` › ${vhost} › `), h("h1", {}, `Contract ${name}`), about, tester);
  get(path)
    .then((c) =>
      fill(
        about,
        section(
          "Scope and mode",
          facts([
            ["Exchange", c.exchange || "(default)"],
            ["Routing key", c.routing_key ?? "any"],
            ["Message type", c.message_type ?? "any"],
            ["Content type", c.content_type ?? "any"],
            ["Largest body", c.max_body_bytes ? `${c.max_body_bytes} bytes` : "no limit"],
            ["On violation", c.on_violation + (c.dead_letter_exchange !== null && c.dead_letter_exchange !== undefined ? ` to exchange '${c.dead_letter_exchange}'` : "")],
            ["Compatibility", c.compatibility],
          ]),
        ),
        section("Schemas", c.versions.slice().reverse().map((v) => h("details", { open: v.version === c.version }, h("summary", {}, `Version ${v.version}${v.version === c.version ? " (checked now)" : ""}`), pre(v.schema)))),
      ),
    )
    .catch((e) => fill(about, h("p", { class: "notice error", role: "alert" }, e.message)));
  return () => {};
}

export function transformsPage(main, vhost, name) {
  if (name === undefined) {
    const list = listView({
      path: "/api/transforms",
      noun: "transform",
      sort: "name",
      columns: [
        { label: "Name", key: "name", value: (t) => link("transforms", t) },
        { label: "Vhost", key: "vhost" },
        { label: "Version", key: "version", numeric: true },
        { label: "Time limit (ms)", key: "timeout_ms", numeric: true },
        { label: "Most outputs", key: "max_outputs", numeric: true },
      ],
    });
    main.append(h("h1", {}, "Transforms"), h("p", {}, "jq programs that translate a message from one system's shape into another's, split it, or drop it."), list.el);
    return list.stop;
  }
  const path = `/api/transforms/${enc(vhost)}/${enc(name)}`;
  const about = h("div");
  const tester = sampleTester(
    path,
    field("Properties (JSON)", "properties", { type: "textarea", hint: 'For example {"headers": {"source": "shop"}}' }),
    "Run on the sample",
    (v) => {
      const properties = parseJson(v.properties, "Properties");
      return properties ? { properties } : {};
    },
    (answer) => [h("p", {}, `Version ${answer.version} made ${answer.outputs.length} message(s):`), answer.outputs.map((o) => pre(o))],
  );
  main.append(h("p", { class: "crumbs" }, h("a", { href: "#/transforms" }, "Transforms"), ` › ${vhost} › `), h("h1", {}, `Transform ${name}`), about, tester);
  get(path)
    .then((t) =>
      fill(
        about,
        section("Program", facts([["Version", t.version], ["Time limit", `${t.timeout_ms} ms`], ["Most outputs", t.max_outputs], ["Largest output", `${t.max_output_bytes} bytes`]]), pre(t.program)),
        t.lookup && Object.keys(t.lookup).length ? section("Lookup table", pre(t.lookup)) : null,
      ),
    )
    .catch((e) => fill(about, h("p", { class: "notice error", role: "alert" }, e.message)));
  return () => {};
}
