// Building blocks of every page: elements made without HTML strings (so nothing a message
// carries is ever read as markup), number formats, notices, confirmations and forms.

/** An element: h("a", {href: "#/"}, "text", child, ...). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const fmt = {
  count(n) {
    return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US");
  },
  rate(r) {
    if (r === undefined || r === null) return "–";
    const v = Number(r);
    return `${v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1)}/s`;
  },
  bytes(b) {
    if (b === undefined || b === null) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(b);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
  },
  duration(ms) {
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  },
  time(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC");
  },
  json(value) {
    return JSON.stringify(value, null, 2);
  },
};

/** The value at a dotted path of an object. */
export function at(obj, path) {
  return path.split(".").reduce((v, key) => (v === undefined || v === null ? undefined : v[key]), obj);
}

let noticeTimer = null;

/** A short message in the notice bar; errors stay until the next notice, others fade. */
export function notify(text, kind = "ok") {
  const bar = document.getElementById("notice");
  clearTimeout(noticeTimer);
  fill(bar, h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : undefined }, text));
  if (kind !== "error") noticeTimer = setTimeout(() => bar.replaceChildren(), 6000);
}

/** Runs an action, showing its success or its error in plain words. */
export async function act(action, success) {
  try {
    const result = await action();
    if (success) notify(typeof success === "function" ? success(result) : success, "ok");
    return result;
  } catch (e) {
    notify(e.message || String(e), "error");
    return undefined;
  }
}

/** Asks before a change that cannot be undone; resolves true only if confirmed. */
export function confirmAction(question, confirmLabel = "Yes, do it") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-q" });
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const yes = h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel);
    const no = h("button", { type: "button", onclick: () => done(false) }, "Cancel");
    dialog.append(h("p", { id: "confirm-q" }, question), h("div", { class: "buttons" }, yes, no));
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

let fieldCount = 0;

/** A labelled form field; `type` "textarea", "select" (with options), "checkbox" or an input type. */
export function field(label, name, { type = "text", value = "", options = [], required = false, hint } = {}) {
  fieldCount += 1;
  const id = `f${fieldCount}-${name}`;
  let input;
  if (type === "textarea") input = h("textarea", { id, name, rows: 6, required }, value);
  else if (type === "select") {
    input = h("select", { id, name }, options.map((o) => h("option", { value: o, selected: o === value }, o)));
  } else if (type === "checkbox") input = h("input", { id, name, type, checked: Boolean(value) });
  else input = h("input", { id, name, type, value, required, autocomplete: type === "password" ? "current-password" : "off" });
  const wrap = h("div", { class: `field ${type}` }, h("label", { for: id }, label), input);
  if (hint) wrap.append(h("small", {}, hint));
  return wrap;
}

/** The values of a form's fields, by name. */
export function values(form) {
  const out = {};
  for (const el of form.querySelectorAll("input, textarea, select")) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return out;
}

/** Parses JSON typed by a person, or throws a sentence saying where it is wrong. */
export function parseJson(text, what) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}

/** A definition list of label/value pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

export function pre(value) {
  return h("pre", { class: "code" }, typeof value === "string" ? value : fmt.json(value));
}

/** Runs `tick` now and every `ms` until the page is left; returns the stop function. */
export function every(ms, tick) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    if (stopped) return;
    try {
      await tick();
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A small table of rows of text. */
export function table(headings, rows) {
  return h(
    "div",
    { class: "scroll" },
    h("table", { class: "list" }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c ?? "–")))))),
  );
}
