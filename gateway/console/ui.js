// Small DOM helpers: building elements, notices, dialogs, formatting.

/** h("button.primary", { onclick }, "Save") — an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = [el.className, v].filter(Boolean).join(" ");
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A notice above the page content: kind "error", "ok" or "info". */
export function notify(message, kind = "info", timeout = kind === "error" ? 0 : 5000) {
  const area = document.getElementById("notices");
  const close = h("button.link", { type: "button", "aria-label": "Dismiss" }, "×");
  const note = h(`div.notice.${kind}`, { role: kind === "error" ? "alert" : "status" }, h("span", message), close);
  close.addEventListener("click", () => note.remove());
  area.append(note);
  if (timeout) setTimeout(() => note.remove(), timeout);
  return note;
}

export function clearNotices() {
  document.getElementById("notices").replaceChildren();
}

/** Shows an error (an ApiError gets its friendly sentence). */
export function showError(e, context = "") {
  const text = e && e.friendly ? e.friendly : String(e && e.message ? e.message : e);
  return notify(context ? `${context}: ${text}` : text, "error");
}

/** A modal <dialog>; resolves with the value of the button pressed (or "cancel"). */
export function modal(title, body, buttons = [{ label: "Close", value: "cancel" }]) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" });
    const dialog = h("dialog.modal", { "aria-label": title }, form);
    mount(
      form,
      h("h2", title),
      h("div.dialog-body", body),
      h(
        "div.dialog-buttons",
        buttons.map((b) =>
          h(`button${b.kind ? `.${b.kind}` : ""}`, { value: b.value, type: "submit", "data-value": b.value }, b.label),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue || "cancel");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Asks before something that cannot be undone. */
export async function confirmDanger(title, text, label) {
  const answer = await modal(title, h("p", text), [
    { label: "Cancel", value: "cancel" },
    { label, value: "ok", kind: "danger" },
  ]);
  return answer === "ok";
}

/** A value shown once, with a copy button. */
export function showSecret(title, secret, note) {
  return modal(
    title,
    h(
      "div",
      h("p", note || "Copy it now: it is shown only once."),
      h("div.secret-row", h("code.secret", { "data-testid": "secret" }, secret), copyButton(secret)),
    ),
    [{ label: "Done", value: "ok", kind: "primary" }],
  );
}

export function copyButton(text) {
  const button = h("button.secondary", { type: "button" }, "Copy");
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API (an insecure context): select the text instead.
      const range = document.createRange();
      range.selectNodeContents(button.previousElementSibling);
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}

export function empty(text) {
  return h("div.empty", h("p", text));
}

export function loading(text = "Loading…") {
  return h("div.loading", { role: "status" }, text);
}

/** A table from column definitions `{ label, cell(row), class? }`. */
export function table(columns, rows, { rowAttrs } = {}) {
  return h(
    "div.table-wrap",
    h(
      "table",
      h("thead", h("tr", columns.map((c) => h("th", { class: c.class }, c.label)))),
      h(
        "tbody",
        rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h("td", { class: c.class }, c.cell(r))))),
      ),
    ),
  );
}

export function badge(text, kind = "") {
  return h(`span.badge${kind ? `.${kind}` : ""}`, text);
}

const thisYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const otherYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/** A time in the reader's zone, the year only when it is not this one; the full instant on hover. */
export function when(iso) {
  if (!iso) return "—";
  const el = document.createElement("time");
  el.dateTime = iso;
  el.title = iso;
  el.textContent = whenText(iso);
  return el;
}

/** The same as text, for inside a sentence. */
export function whenText(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return (d.getFullYear() === new Date().getFullYear() ? thisYear : otherYear).format(d);
}

export function num(n) {
  return n === undefined || n === null ? "—" : Number(n).toLocaleString();
}

export function seconds(ms) {
  return ms === undefined || ms === null ? "—" : `${(ms / 1000).toFixed(1)} s`;
}

/** Disables `button` while `fn` runs. */
export async function busy(button, fn) {
  const label = button.textContent;
  button.disabled = true;
  button.classList.add("busy");
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
    button.textContent = label;
  }
}

/** Triggers a download of a Blob URL. */
export function download(url, filename) {
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}
