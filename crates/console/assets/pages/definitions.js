// Definitions: download every definition (RabbitMQ's format, with Warren's contracts and
// transforms) as a file, and import a file, all at once or refused whole.

import { api, get } from "../api.js";
import { act, fill, fmt, h, section } from "../ui.js";

export function definitionsPage(main) {
  const summary = h("p");
  const download = h("button", { type: "button", class: "primary" }, "Download definitions");
  download.addEventListener("click", async () => {
    const defs = await act(() => get("/api/definitions"));
    if (!defs) return;
    const blob = new Blob([JSON.stringify(defs, null, 2)], { type: "application/json" });
    const a = h("a", { href: URL.createObjectURL(blob), download: `warren-definitions-${new Date().toISOString().slice(0, 10)}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    fill(summary, describe(defs));
  });

  const file = h("input", { type: "file", accept: "application/json,.json", id: "defs-file" });
  const importButton = h("button", { type: "button", class: "danger" }, "Import the file");
  const imported = h("p", { "aria-live": "polite" });
  importButton.addEventListener("click", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) {
      fill(imported, "Choose a definitions file first.");
      return;
    }
    let defs;
    try {
      defs = JSON.parse(await chosen.text());
    } catch (e) {
      fill(imported, `The file is not JSON: ${e.message}`);
      return;
    }
    const done = await act(() => api("POST", "/api/definitions", defs), `Imported ${chosen.name}: ${describe(defs)}`);
    if (done !== undefined) fill(imported, `Imported ${chosen.name}.`);
  });

  main.append(
    h("h1", {}, "Definitions"),
    section("Export", h("p", {}, "Users, vhosts, permissions, limits, policies, exchanges, queues, bindings, contracts and transforms, as one JSON file that RabbitMQ can read too."), download, summary),
    section("Import", h("p", {}, "Adds or replaces what the file defines. A file with any invalid part is refused whole, and nothing changes."), h("label", { for: "defs-file" }, "Definitions file"), file, importButton, imported),
  );
  return () => {};
}

function describe(defs) {
  const count = (key) => (Array.isArray(defs[key]) ? defs[key].length : 0);
  return ["users", "vhosts", "permissions", "policies", "exchanges", "queues", "bindings", "contracts", "transforms"]
    .filter((key) => count(key))
    .map((key) => `${fmt.count(count(key))} ${key}`)
    .join(", ") || "nothing";
}
