// The postgrest-gateway demo: plain JavaScript, no build step, no dependency.
// Signs in with cookies ("cookie": true), reads and writes the organization's projects through
// the PostgREST mount with count=exact pagination, switches organization, signs out.
// Every value from the server is rendered with textContent, never as HTML: row names are input.
"use strict";

(function () {
  const PAGE_SIZE = 5;
  const body = document.body;
  const REST = body.dataset.restPrefix;
  const CSRF_COOKIE = body.dataset.csrfCookie;

  const $ = (id) => document.getElementById(id);
  const state = { offset: 0, total: 0, organizationId: null };

  function showError(message) {
    $("error").textContent = message;
  }

  function csrfToken() {
    // The CSRF cookie is the one gateway cookie a script may read (double submit).
    for (const part of document.cookie.split(";")) {
      const [name, ...value] = part.trim().split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
    }
    return "";
  }

  async function problem(response) {
    // The gateway and PostgREST both answer errors as JSON with a "message".
    try {
      const answer = await response.json();
      if (answer && typeof answer.message === "string") return answer.message;
    } catch (_) {
      // not JSON: fall through to the status
    }
    return "Request failed with status " + response.status + ".";
  }

  async function send(method, path, options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (options && options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    return fetch(path, init);
  }

  async function authorized(method, path, options) {
    // The access cookie lives GATEWAY_ACCESS_TOKEN_TTL seconds, the refresh cookie much longer:
    // on a 401, trade the refresh cookie for new cookies once, then try again.
    const response = await send(method, path, options);
    if (response.status !== 401) return response;
    const refreshed = await send("POST", "/auth/refresh", { json: {} });
    if (!refreshed.ok) return response;
    return send(method, path, options);
  }

  function showSignedIn(signedIn) {
    $("signed-out").hidden = signedIn;
    $("signed-in").hidden = !signedIn;
  }

  function clearSession() {
    $("rows").replaceChildren();
    $("count").textContent = "";
    $("page").textContent = "";
    $("who").textContent = "";
    $("org-switch").replaceChildren();
    state.offset = 0;
    state.total = 0;
    state.organizationId = null;
    showSignedIn(false);
  }

  async function loadSession() {
    const response = await authorized("GET", "/auth/me");
    if (response.status === 401) {
      clearSession();
      return false;
    }
    if (!response.ok) {
      showError(await problem(response));
      return false;
    }
    const me = await response.json();
    $("who").textContent = me.user.email;
    state.organizationId = me.organization ? me.organization.organization_id : null;
    const options = me.memberships.map((membership) => {
      const option = document.createElement("option");
      option.value = String(membership.organization_id);
      option.textContent = membership.org_name + " (" + membership.role + ")";
      option.selected = membership.organization_id === state.organizationId;
      return option;
    });
    $("org-switch").replaceChildren(...options);
    showSignedIn(true);
    state.offset = 0;
    await loadRows();
    return true;
  }

  function parseContentRange(value) {
    // "0-4/12", or "*/0" for an empty result (or a range past the end).
    const match = /^(?:(\d+)-(\d+)|\*)\/(\d+)$/.exec(value || "");
    return match ? Number(match[3]) : null;
  }

  async function loadRows() {
    const last = state.offset + PAGE_SIZE - 1;
    const response = await authorized("GET", REST + "/projects?select=id,name&order=id.desc", {
      headers: { Prefer: "count=exact", "Range-Unit": "items", Range: state.offset + "-" + last },
    });
    const total = parseContentRange(response.headers.get("Content-Range"));
    if (response.status === 416 && total !== null && state.offset > 0) {
      // The rows shrank under us: show the last page there is.
      state.offset = Math.max(0, Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE);
      return loadRows();
    }
    if (!response.ok) {
      showError(await problem(response));
      return;
    }
    const rows = await response.json();
    state.total = total === null ? rows.length : total;
    $("rows").replaceChildren(
      ...rows.map((row) => {
        const item = document.createElement("li");
        item.textContent = row.name;
        return item;
      }),
    );
    $("count").textContent = String(state.total);
    const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
    $("page").textContent = "page " + (state.offset / PAGE_SIZE + 1) + " of " + pages;
    $("prev-page").disabled = state.offset === 0;
    $("next-page").disabled = state.offset + PAGE_SIZE >= state.total;
  }

  async function signIn(event) {
    event.preventDefault();
    const response = await send("POST", "/auth/login", {
      json: { email: $("email").value, password: $("password").value, cookie: true },
    });
    $("password").value = "";
    if (!response.ok) {
      showError(await problem(response));
      return;
    }
    showError("");
    await loadSession();
  }

  async function create(event) {
    event.preventDefault();
    const response = await authorized("POST", REST + "/projects", {
      json: { organization_id: state.organizationId, name: $("new-name").value },
      headers: { Prefer: "return=minimal" },
    });
    if (!response.ok) {
      showError(await problem(response));
      return;
    }
    showError("");
    $("new-name").value = "";
    state.offset = 0;
    await loadRows();
  }

  async function switchOrganization() {
    const response = await authorized("POST", "/auth/switch-organization", {
      // Ids are below 2^53, exact as JavaScript numbers.
      json: { organization_id: Number($("org-switch").value) },
    });
    if (!response.ok) {
      showError(await problem(response));
      await loadSession();
      return;
    }
    showError("");
    await loadSession();
  }

  async function signOut() {
    // Through the same refresh-once path as every call: the screen is cleared only once the
    // gateway says the session has ended. A refusal is shown, never taken for a sign-out: a
    // session left alive would sign the next visit back in.
    const response = await authorized("POST", "/auth/logout", { json: { scope: "local" } });
    if (!response.ok) {
      showError(await problem(response));
      return;
    }
    showError("");
    clearSession();
  }

  async function page(step) {
    state.offset = Math.max(0, state.offset + step * PAGE_SIZE);
    await loadRows();
  }

  function guarded(action) {
    // A network failure must land in #error like any refusal.
    return (event) =>
      action(event).catch((error) => showError("Request failed: " + error.message));
  }

  $("sign-in-form").addEventListener("submit", guarded(signIn));
  $("create-form").addEventListener("submit", guarded(create));
  $("org-switch").addEventListener("change", guarded(switchOrganization));
  $("sign-out").addEventListener("click", guarded(signOut));
  $("next-page").addEventListener("click", guarded(() => page(1)));
  $("prev-page").addEventListener("click", guarded(() => page(-1)));
  guarded(loadSession)();
})();
