// The console's one door to the broker: same-origin fetches carrying the session's
// anti-forgery token, JSON in and out, and every refusal turned into a sentence a person reads.

let csrfToken = "none";

/** Who is logged in: their name and tags. */
export const session = { name: "", tags: [] };
let onSessionEnded = () => {};

export function setCsrfToken(token) {
  csrfToken = token || "none";
}

/** Called when the broker says the session is over (logout elsewhere, idle, user changed). */
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

export class ApiError extends Error {
  constructor(status, message, reason) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** RabbitMQ's terse refusals (kept for its clients), said the way a person would. */
const PLAIN = {
  "Not administrator user": "only a user with the administrator tag may do this",
  "User not authorised to access object": "only a user with the policymaker or administrator tag may change this",
  "Not management user": "this user has no management tag",
};

function reasonOf(status, data, text) {
  const reason = (data && (data.reason || data.error)) || (text || "").slice(0, 300) || `status ${status}`;
  return PLAIN[reason] || reason;
}

export const enc = encodeURIComponent;

function sentence(status, reason) {
  switch (status) {
    case 400: return `The broker refused this: ${reason}.`;
    case 401: return `Not allowed: ${reason}.`;
    case 403: return `Not permitted: ${reason}.`;
    case 404: return "Not found: it may have been deleted, or you may not see it.";
    case 409: return `Conflict: ${reason}.`;
    case 413: return "Too large: the broker does not take a request this big.";
    case 415: return `Wrong format: ${reason}.`;
    case 422: return `It did not work: ${reason}.`;
    case 429:
    case 503: return `The broker is busy or short of resources, try again shortly: ${reason}.`;
    default: return `The broker answered ${status}: ${reason}.`;
  }
}

/**
 * A request to the broker. Resolves to the JSON answer (null for an empty one); rejects with
 * an ApiError whose message is a plain sentence.
 */
export async function api(method, path, body, retried = false) {
  const headers = { "X-CSRF-Token": csrfToken, Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The broker cannot be reached: it may be down, or the network is.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const reason = reasonOf(response.status, data, text);
  const error = new ApiError(response.status, sentence(response.status, reason), reason);
  if (response.status === 401 && path !== "/api/session") {
    // A 401 is "this user may not", or "there is no session any more", or "this tab's token is
    // stale" (another tab logged in again): ask which.
    const still = await fetch("/api/session", { headers: { "X-CSRF-Token": csrfToken }, cache: "no-store" });
    if (!still.ok) {
      onSessionEnded();
    } else {
      const current = await still.json();
      if (current.csrf_token !== csrfToken && !retried) {
        setCsrfToken(current.csrf_token);
        session.name = current.name;
        session.tags = current.tags;
        return api(method, path, body, true);
      }
    }
  }
  throw error;
}

export const get = (path) => api("GET", path);
