// A list of broker objects that stays quick at 10,000 of them: the broker filters, sorts and
// pages (RabbitMQ's `name`, `use_regex`, `sort`, `sort_reverse`, `page`, `page_size`), so the
// browser only ever holds and draws one page. It refreshes itself while shown.

import { get } from "./api.js";
import { at, every, fill, fmt, h, notify } from "./ui.js";

const PAGE_SIZES = [25, 100, 500];
const REFRESH_MS = 5000;
const FILTER_DELAY_MS = 300;

/**
 * @param {object} spec
 * @param {string} spec.path the list's API path
 * @param {{label: string, key?: string, value?: (item) => any, numeric?: boolean, minor?: boolean}[]} spec.columns
 * @param {string} [spec.sort] the first sort key
 * @param {boolean} [spec.filter] whether to offer the name filter (lists of named objects)
 * @param {string} spec.noun what one item is called ("queue")
 * @returns {{el: HTMLElement, stop: () => void, reload: () => Promise<void>}}
 */
export function listView(spec) {
  const state = { page: 1, size: 100, name: "", regex: false, sort: spec.sort || "", reverse: false };
  const status = h("p", { class: "list-status", "aria-live": "polite" });
  const body = h("tbody");
  const head = h("tr");
  const pager = h("div", { class: "pager" });
  const controls = h("div", { class: "list-controls" });

  if (spec.filter !== false) {
    let timer = null;
    const input = h("input", { type: "search", "aria-label": `Filter ${spec.noun}s by name`, placeholder: `Filter ${spec.noun}s by name` });
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.name = input.value;
        state.page = 1;
        reload();
      }, FILTER_DELAY_MS);
    });
    const regex = h("input", { type: "checkbox", id: `re-${spec.noun}` });
    regex.addEventListener("change", () => {
      state.regex = regex.checked;
      state.page = 1;
      reload();
    });
    controls.append(input, h("label", { class: "inline", for: `re-${spec.noun}` }, regex, " regular expression"));
  }
  const size = h("select", { "aria-label": "Items per page" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.size }, `${n} per page`)));
  size.addEventListener("change", () => {
    state.size = Number(size.value);
    state.page = 1;
    reload();
  });
  controls.append(size);

  function drawHead() {
    fill(
      head,
      spec.columns.map((c) => {
        if (!c.key) return h("th", { scope: "col", class: classOf(c) }, c.label);
        const sorted = state.sort === c.key;
        const button = h("button", { type: "button", class: "sort" }, c.label, sorted ? (state.reverse ? " ▼" : " ▲") : "");
        button.addEventListener("click", () => {
          state.reverse = sorted ? !state.reverse : Boolean(c.numeric);
          state.sort = c.key;
          state.page = 1;
          drawHead();
          reload();
        });
        return h("th", { scope: "col", "aria-sort": sorted ? (state.reverse ? "descending" : "ascending") : "none", class: classOf(c) }, button);
      }),
    );
  }

  function query() {
    const q = new URLSearchParams({ page: state.page, page_size: state.size });
    if (state.name) q.set("name", state.name);
    if (state.regex) q.set("use_regex", "true");
    if (state.sort) q.set("sort", state.sort);
    if (state.reverse) q.set("sort_reverse", "true");
    return `${spec.path}?${q}`;
  }

  // A sort or filter can start a reload while the timer's is under way: only the latest
  // request's answer is drawn.
  let latest = 0;

  async function reload() {
    latest += 1;
    const mine = latest;
    let answer;
    try {
      answer = await get(query());
      if (mine !== latest) return;
    } catch (e) {
      if (mine !== latest) return;
      if (e.status === 400 && state.page > 1) {
        // The list shrank under the page being shown: go back to the first page.
        state.page = 1;
        return reload();
      }
      fill(status, e.message);
      status.classList.add("error");
      return;
    }
    status.classList.remove("error");
    const items = answer.items || [];
    fill(
      body,
      items.length
        ? items.map((item) => h("tr", {}, spec.columns.map((c) => h("td", { class: classOf(c) }, c.value ? c.value(item) : cell(at(item, c.key))))))
        : h("tr", {}, h("td", { colspan: spec.columns.length, class: "empty" }, state.name ? `No ${spec.noun} matches the filter.` : `No ${spec.noun}s.`)),
    );
    const first = (answer.page - 1) * answer.page_size + (items.length ? 1 : 0);
    const last = (answer.page - 1) * answer.page_size + items.length;
    fill(status, `${fmt.count(first)}–${fmt.count(last)} of ${fmt.count(answer.filtered_count)} ${spec.noun}s` + (answer.filtered_count !== answer.total_count ? ` (${fmt.count(answer.total_count)} in all)` : ""));
    const go = (page) => () => {
      state.page = page;
      reload();
    };
    fill(
      pager,
      h("button", { type: "button", disabled: answer.page <= 1, onclick: go(answer.page - 1) }, "Previous"),
      h("span", {}, `Page ${answer.page} of ${Math.max(1, answer.page_count)}`),
      h("button", { type: "button", disabled: answer.page >= answer.page_count, onclick: go(answer.page + 1) }, "Next"),
    );
  }

  drawHead();
  const table = h("div", { class: "scroll" }, h("table", { class: "list" }, h("thead", {}, head), body));
  const el = h("div", { class: "list-view" }, controls, status, table, pager);
  const stop = every(REFRESH_MS, reload);
  return { el, stop, reload: () => reload().catch((e) => notify(e.message, "error")) };
}

/** Numbers align right; `minor` columns give way on a phone-sized screen. */
function classOf(column) {
  return [column.numeric ? "num" : "", column.minor ? "minor" : ""].join(" ").trim() || undefined;
}

function cell(value) {
  if (value === undefined || value === null || value === "") return "–";
  if (typeof value === "number") return fmt.count(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
