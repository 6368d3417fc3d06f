// Keys: list with this period's usage; create (scopes, expiry, credit
// limit; the secret shown once); rotate with a grace period; revoke.

import { ApiError, del, get, getKey, post } from "../api.js";
import { badge, busy, confirmDanger, empty, h, loading, modal, mount, notify, num, showError, showSecret, table, when, whenText } from "../ui.js";

const SCOPES = [
  "generations:read",
  "generations:write",
  "voices:read",
  "voices:write",
  "webhooks:manage",
  "keys:manage",
  "usage:read",
];
const GRACE = [
  ["0", "None: the old secret stops now"],
  ["3600", "1 hour"],
  ["86400", "24 hours"],
  ["604800", "7 days"],
];

function state(k) {
  const now = Date.now();
  if (k.revokedAt && Date.parse(k.revokedAt) <= now) return badge("revoked", "bad");
  if (k.expiresAt && Date.parse(k.expiresAt) <= now) return badge("expired", "bad");
  if (k.revokedAt) return badge(`ends ${whenText(k.revokedAt)}`, "warn");
  if (k.expiresAt) return badge(`expires ${whenText(k.expiresAt)}`, "warn");
  return badge("active", "good");
}

const usable = (k) => !(k.revokedAt && Date.parse(k.revokedAt) <= Date.now()) && !(k.expiresAt && Date.parse(k.expiresAt) <= Date.now());

export async function render(root) {
  const listArea = h("div", { id: "keys-list" }, loading());
  const name = h("input", { id: "key-name", required: true, maxlength: 100, placeholder: "e.g. production server" });
  const scopeBoxes = SCOPES.map((s) => h("input", { type: "checkbox", value: s, checked: s !== "keys:manage", name: "scope" }));
  const expires = h("input", { id: "key-expires", type: "datetime-local" });
  const limit = h("input", { id: "key-limit", type: "number", min: 1, step: 1, placeholder: "no limit" });
  const create = h("button.primary", { type: "submit", id: "key-create" }, "Create key");
  const form = h(
    "form.card",
    { id: "key-form" },
    h("h2", "New key"),
    h("div.grid2", h("div", h("label", { for: "key-name" }, "Name"), name), h("div", h("label", { for: "key-limit" }, "Credit limit per period"), limit)),
    h("fieldset", h("legend", "Scopes"), h("div.scopes", scopeBoxes.map((b) => h("label.check", b, h("code", b.value))))),
    h("div.grid2", h("div", h("label", { for: "key-expires" }, "Expires (optional, your local time)"), expires), h("div.end", create)),
  );
  mount(root, h("h1", "API keys"), h("div.card", h("h2", "Keys"), listArea), form);

  async function load() {
    try {
      const keys = (await get("/keys")).data;
      const current = getKey();
      mount(
        listArea,
        keys.length
          ? table(
              [
                { label: "Name", cell: (k) => [k.name, current.startsWith(k.prefix) && usable(k) ? h("span.hint", " (this tab)") : null] },
                { label: "Prefix", cell: (k) => h("code", k.prefix) },
                { label: "Scopes", cell: (k) => h("div.chips", k.scopes.map((s) => h("span.chip", s))) },
                { label: "State", cell: state },
                { label: "Created", cell: (k) => when(k.createdAt) },
                { label: "Last used", cell: (k) => when(k.lastUsedAt) },
                { label: "Credits (period)", class: "num", cell: (k) => `${num(k.usage ? k.usage.credits : 0)}${k.creditLimit ? ` / ${num(k.creditLimit)}` : ""}` },
                {
                  label: "",
                  class: "actions",
                  cell: (k) =>
                    usable(k)
                      ? [
                          h("button.secondary.small", { type: "button", onclick: () => rotate(k) }, "Rotate"),
                          h("button.danger.small", { type: "button", onclick: () => revoke(k) }, "Revoke"),
                        ]
                      : null,
                },
              ],
              keys,
              { rowAttrs: (k) => ({ "data-key-id": k.id, "data-key-name": k.name }) },
            )
          : empty("No keys yet."),
      );
    } catch (e) {
      mount(listArea, h("p.notice.error", e instanceof ApiError ? e.friendly : String(e)));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const created = await busy(create, async () => {
      const scopes = scopeBoxes.filter((b) => b.checked).map((b) => b.value);
      if (!scopes.length) {
        notify("Pick at least one scope.", "error");
        return;
      }
      const body = { name: name.value.trim(), scopes };
      if (expires.value) {
        const at = new Date(expires.value);
        if (Number.isNaN(at.getTime()) || at.getTime() <= Date.now()) {
          notify("The expiry must be in the future.", "error");
          return;
        }
        body.expiresAt = at.toISOString();
      }
      if (limit.value) body.creditLimit = Number(limit.value);
      try {
        const created = await post("/keys", body);
        form.reset();
        for (const b of scopeBoxes) b.checked = b.value !== "keys:manage";
        await load();
        return created;
      } catch (e) {
        showError(e, "Creating the key");
        return null;
      }
    });
    if (created) {
      await showSecret(`Key “${created.name}” created`, created.secret, "Copy the secret now: it is shown only once. Store it like a password.");
    }
  });

  async function rotate(k) {
    const grace = h("select", { id: "grace" }, GRACE.map(([v, l]) => h("option", { value: v, selected: v === "86400" }, l)));
    const answer = await modal(
      `Rotate “${k.name}”`,
      h("div", h("p", "A new secret replaces this key's. The old secret keeps working during the grace period, so your servers can switch without downtime."), h("label", { for: "grace" }, "Grace period"), grace),
      [
        { label: "Cancel", value: "cancel" },
        { label: "Rotate", value: "ok", kind: "primary" },
      ],
    );
    if (answer !== "ok") return;
    try {
      const created = await post(`/keys/${k.id}/rotate`, { gracePeriodSeconds: Number(grace.value) });
      await load();
      await showSecret(`New secret for “${created.name}”`, created.secret);
    } catch (e) {
      showError(e, "Rotating the key");
    }
  }

  async function revoke(k) {
    const self = getKey().startsWith(k.prefix);
    const ok = await confirmDanger(
      `Revoke “${k.name}”?`,
      `Every request with ${k.prefix}… will be refused at once. This cannot be undone.${self ? " This is the key this console uses: you will be signed out." : ""}`,
      "Revoke key",
    );
    if (!ok) return;
    try {
      await del(`/keys/${k.id}`);
      notify(`Key “${k.name}” revoked.`, "ok");
      await load();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) showError(e, "Revoking the key");
    }
  }

  await load();
}
