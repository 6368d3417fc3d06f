// The console shell: the key (pasted, kept in this tab's sessionStorage),
// the header, and a hash router over the pages.

import { ApiError, forgetKey, get, getKey, looksLikeKey, setKey, setUnauthorizedHandler } from "./api.js";
import { clearNotices, h, mount, notify, showError } from "./ui.js";
import { resetVoices } from "./voices.js";
import * as playground from "./pages/playground.js";
import * as voices from "./pages/voices.js";
import * as usage from "./pages/usage.js";
import * as keys from "./pages/keys.js";
import * as generations from "./pages/generations.js";
import * as webhooks from "./pages/webhooks.js";

const PAGES = { playground, voices, usage, keys, generations, webhooks };
const page = () => document.getElementById("page");
let cleanup = null;
let signInMessage = "";

function currentPage() {
  const name = location.hash.replace(/^#\/?/, "").split("/")[0];
  return PAGES[name] ? name : "playground";
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page's clean-up failing must not stop the next page.
    }
    cleanup = null;
  }
  if (!getKey()) {
    renderSignIn();
    return;
  }
  const name = currentPage();
  document.getElementById("nav").hidden = false;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === name);
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · voiceprod console`;
  const root = mount(page(), h("div", { "data-page": name }));
  try {
    cleanup = (await PAGES[name].render(root)) || null;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  }
}

function renderSignIn() {
  document.getElementById("nav").hidden = true;
  renderWho(null);
  document.title = "Sign in · voiceprod console";
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "vp_…",
    required: true,
    "aria-describedby": "key-help",
  });
  const button = h("button.primary", { type: "submit" }, "Use this key");
  const form = h(
    "form.card.signin",
    { id: "signin" },
    h("h1", "Open your workspace"),
    h(
      "p",
      { id: "key-help" },
      "Paste an API key of your workspace. It stays in this browser tab only (session storage): never in a cookie, never in a URL, and it is sent only to this server's /v1 API.",
    ),
    signInMessage ? h("p.notice.error", { role: "alert" }, signInMessage) : null,
    h("label", { for: "api-key" }, "API key"),
    h("div.row", input, button),
  );
  signInMessage = "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearNotices();
    const key = input.value.trim();
    if (!looksLikeKey(key)) {
      notify("That does not look like an API key: a key is vp_ followed by 40 letters and digits.", "error");
      return;
    }
    button.disabled = true;
    try {
      await checkKey(key);
      setKey(key);
      await route();
      loadWho();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  });
  mount(page(), form);
  input.focus();
}

/** Accepts a key the API accepts: /v1/workspace, or a 403 for its scope. */
async function checkKey(key) {
  try {
    await get("/workspace", undefined, key);
    return;
  } catch (e) {
    if (e instanceof ApiError && e.status === 403 && e.code !== "plan_required") return;
    throw e;
  }
}

function renderWho(workspace) {
  const who = document.getElementById("who");
  if (!getKey()) {
    who.replaceChildren();
    return;
  }
  const key = getKey();
  mount(
    who,
    workspace ? h("span.ws", { title: workspace.id }, `${workspace.name} · ${workspace.plan}`) : null,
    h("code.key-prefix", { title: "The key in use in this tab" }, `${key.slice(0, 7)}…`),
    h("button.secondary.small", { type: "button", id: "forget-key", onclick: signOut }, "Forget key"),
  );
}

async function loadWho() {
  renderWho(null);
  try {
    renderWho(await get("/workspace"));
  } catch {
    // A key without usage:read: the header shows the key only.
  }
}

function signOut(message = "") {
  forgetKey();
  resetVoices();
  clearNotices();
  signInMessage = typeof message === "string" ? message : "";
  route();
}

setUnauthorizedHandler((error) => {
  if (!getKey()) return; // already signed out by another request
  // The key no longer works (revoked, expired, rotated away): back to the
  // sign-in form, saying why.
  signOut(error.friendly);
});

window.addEventListener("hashchange", () => {
  clearNotices();
  route();
});

route();
if (getKey()) loadWho();
