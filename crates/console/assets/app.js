// The console's shell: logging in and out, the navigation, the alarms bar, and the router that
// turns the address's fragment (#/queues, #/queue/vhost/name ...) into a page.

import { api, get, session, setCsrfToken, whenSessionEnds } from "./api.js";
import { every, field, fill, h, notify, values } from "./ui.js";
import { overviewPage } from "./pages/overview.js";
import { listPage } from "./pages/lists.js";
import { queuePage } from "./pages/queue.js";
import { exchangePage } from "./pages/exchange.js";
import { deadLettersPage } from "./pages/dead_letters.js";
import { trackingPage } from "./pages/tracking.js";
import { contractsPage, transformsPage } from "./pages/rules.js";
import { definitionsPage } from "./pages/definitions.js";

const main = document.getElementById("main");
let leavePage = () => {};
let stopAlarms = () => {};

/** Pages by the first part of the fragment; each gets the rest, decoded, and returns its stop. */
const pages = {
  "": overviewPage,
  queue: queuePage,
  exchange: exchangePage,
  "dead-letters": deadLettersPage,
  tracking: trackingPage,
  contracts: contractsPage,
  transforms: transformsPage,
  definitions: definitionsPage,
};

function route() {
  leavePage();
  leavePage = () => {};
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  let args;
  try {
    args = rest.map((part) => decodeURIComponent(part));
  } catch {
    args = null; // a hand-typed address with a stray %: no such page
  }
  const known = Object.hasOwn(pages, name) && args !== null;
  const page = known ? pages[name] : (el) => listPage(el, args === null ? "" : name);
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === `#/${name}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu").setAttribute("aria-expanded", "false");
  main.replaceChildren();
  // An error belongs to the page it happened on; a success (a deletion that left it) stays.
  const notice = document.getElementById("notice");
  if (notice.querySelector(".error")) notice.replaceChildren();
  const stop = page(main, ...args);
  leavePage = typeof stop === "function" ? stop : () => {};
  main.focus({ preventScroll: true });
}

function showLogin(message, username = "") {
  leavePage();
  leavePage = () => {};
  stopAlarms();
  for (const dialog of document.querySelectorAll("dialog")) dialog.remove();
  document.getElementById("top").hidden = true;
  document.getElementById("alarms").hidden = true;
  const form = h(
    "form",
    { class: "login panel", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Warren"),
    h("p", {}, "Log in with a broker user that has a management tag."),
    message ? h("p", { class: "notice error", role: "alert" }, message) : null,
    field("Username", "username", { required: true, value: username }),
    field("Password", "password", { type: "password", required: true }),
    h("button", { type: "submit", class: "primary" }, "Log in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const { username, password } = values(form);
    try {
      const answer = await api("POST", "/api/session", { username, password });
      loggedIn(answer);
    } catch (err) {
      showLogin(err.status === 401 ? `${err.reason}.` : err.message, username);
    }
  });
  fill(main, form);
  // After a refusal the name stays: the cursor goes where the mistake most likely was.
  form.querySelector(username ? "input[type=password]" : "input").focus();
}

function loggedIn(answer) {
  setCsrfToken(answer.csrf_token);
  session.name = answer.name;
  session.tags = answer.tags;
  document.getElementById("top").hidden = false;
  fill(document.getElementById("who"), `${answer.name} (${answer.tags.join(", ") || "no tags"})`);
  stopAlarms();
  stopAlarms = every(5000, showAlarms);
  if (!location.hash) history.replaceState(null, "", "#/");
  route();
}

async function showAlarms() {
  const bar = document.getElementById("alarms");
  try {
    const nodes = await get("/api/nodes");
    const raised = [];
    for (const node of nodes) {
      if (node.mem_alarm) raised.push(`Memory alarm on ${node.name}: publishers are blocked until memory use falls.`);
      if (node.disk_free_alarm) raised.push(`Disk alarm on ${node.name}: free disk space is below the limit; publishers are blocked.`);
    }
    bar.hidden = raised.length === 0;
    fill(bar, raised.map((text) => h("p", {}, text)));
  } catch {
    // The page itself reports the broker being unreachable.
  }
}

async function start() {
  whenSessionEnds(() => showLogin("Your session has ended. Please log in again."));
  document.getElementById("menu").addEventListener("click", (e) => {
    const nav = document.getElementById("nav");
    const open = nav.classList.toggle("open");
    e.currentTarget.setAttribute("aria-expanded", String(open));
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api("DELETE", "/api/session");
    } catch (e) {
      notify(e.message, "error");
    }
    setCsrfToken(null);
    showLogin("You have logged out.");
  });
  window.addEventListener("hashchange", () => {
    if (!document.getElementById("top").hidden) route();
  });
  try {
    loggedIn(await api("GET", "/api/session"));
  } catch {
    showLogin();
  }
}

start();
