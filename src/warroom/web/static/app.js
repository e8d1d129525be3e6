// War Room Checkpoints web UI: sign-in, hash routing, and the actions (calls of the JSON API).
// The token is kept in sessionStorage and sent as "Authorization: Bearer" by this script only;
// it is never put in a URL or a cookie. Text from the server is set with textContent.
(() => {
  "use strict";
  const KEY = "warroom.token";
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(KEY);

  function notify(message) {
    const notice = $("notice");
    notice.textContent = message;
    notice.hidden = !message;
  }

  function errorMessage(status, text) {
    try {
      return JSON.parse(text).error.message;
    } catch {
      return `the server answered ${status}`;
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    $("nav").replaceChildren();
    $("main").replaceChildren();
    delete $("main").dataset.screen;
    $("jobs").replaceChildren();
    $("main").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("token").focus();
  }

  // The screen named by the hash, "#/backups?status=damaged" -> "/ui/backups?status=damaged".
  function screenPath() {
    const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
    return /^[A-Za-z0-9._:%/?=&+-]+$/.test(hash) && !hash.startsWith("/") ? hash : "overview";
  }

  function route() {
    if (!token()) return;
    const path = screenPath();
    const top = path.split(/[/?]/)[0];
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.getAttribute("href") === `#/${top}`) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    return htmx.ajax("GET", `/ui/${path}`, { target: "#main", swap: "innerHTML" });
  }

  async function api(url, method, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    const text = await response.text();
    if (response.status === 401) signOut("Your token was refused: sign in again.");
    if (!response.ok) throw new Error(errorMessage(response.status, text));
    return text ? JSON.parse(text) : {};
  }

  // A confirmation dialog; with `typed`, the person must type that text exactly.
  function confirmed(prompt, typed) {
    const dialog = $("confirm");
    const input = $("confirm-typed");
    const ok = $("confirm-ok");
    $("confirm-prompt").textContent = prompt;
    $("confirm-typed-row").hidden = !typed;
    $("confirm-expected").textContent = typed || "";
    input.value = "";
    ok.disabled = Boolean(typed);
    input.oninput = () => { ok.disabled = input.value !== typed; };
    dialog.returnValue = "";
    dialog.showModal();
    (typed ? input : ok).focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok" && (!typed || input.value === typed));
      }, { once: true });
    });
  }

  function watchJob(id) {
    const card = document.createElement("section");
    card.className = "job";
    card.setAttribute("hx-get", `/ui/jobs/${encodeURIComponent(id)}`);
    card.setAttribute("hx-trigger", "load");
    card.setAttribute("hx-swap", "outerHTML");
    $("jobs").prepend(card);
    htmx.process(card);
  }

  function showSecret(secret) {
    $("secret-value").textContent = secret;
    $("secret").showModal();
    $("secret").addEventListener("close", () => { $("secret-value").textContent = ""; }, { once: true });
  }

  // An element with data-post: a button (its body in data-body) or a form (its fields).
  async function act(element, body) {
    const fill = (text) => text.replace(/\{(\w+)\}/g, (_, key) => String((body || {})[key] ?? ""));
    const prompt = element.dataset.confirm;
    if (prompt !== undefined && !(await confirmed(fill(prompt), element.dataset.typed))) return;
    notify("");
    try {
      const answer = await api(element.dataset.post, element.dataset.method || "POST", body);
      if (element.dataset.job !== undefined) watchJob(answer.id);
      if (element.dataset.secret !== undefined) showSecret(answer.token);
      if (element.tagName === "FORM") element.reset();
      await route();
    } catch (error) {
      notify(error.message);
    }
  }

  document.addEventListener("htmx:configRequest", (event) => {
    if (token()) event.detail.headers.Authorization = `Bearer ${token()}`;
  });
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401) signOut("Your token was refused: sign in again.");
    else notify(errorMessage(xhr.status, xhr.responseText));
  });
  document.addEventListener("htmx:sendError", () => notify("The server cannot be reached."));
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "main") {
      $("main").dataset.screen = screenPath();  // which screen is shown (tests wait for it)
      notify("");
      const title = $("screen-title");
      if (title) document.title = `${title.textContent.trim()} · War Room Checkpoints`;
      $("main").focus({ preventScroll: true });
    }
  });
  document.body.addEventListener("warroom-job-finished", () => route());

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-post]");
    if (button) {
      act(button, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
      return;
    }
    if (event.target.closest("button[data-dismiss]")) event.target.closest(".job").remove();
    if (event.target.id === "signout") signOut("Signed out.");
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.method === "dialog") return;
    event.preventDefault();
    if (form.id === "signin-form") signIn(form);
    else if (form.dataset.post) act(form, Object.fromEntries(new FormData(form)));
    else if (form.dataset.route) filter(form);
  });

  // A filter form shows its screen again with its fields in the hash (never a secret).
  function filter(form) {
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    const search = query.toString();
    location.hash = `#/${form.dataset.route}${search ? `?${search}` : ""}`;
  }

  document.addEventListener("change", (event) => {
    const form = event.target.closest("form[data-route]");
    if (form) filter(form);
  });

  async function signIn(form) {
    const candidate = form.elements.token.value.trim();
    sessionStorage.setItem(KEY, candidate);
    try {
      await api("/api/v1/whoami", "GET");
    } catch (error) {
      signOut(`Sign-in failed: ${error.message}`);
      return;
    }
    form.reset();
    await start();
  }

  async function start() {
    $("signin").hidden = true;
    $("main").hidden = false;
    await htmx.ajax("GET", "/ui/nav", { target: "#nav", swap: "innerHTML" });
    await route();
  }

  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#/")) route();
  });
  if (token()) start(); else signOut("");
})();
