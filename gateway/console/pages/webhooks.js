// Webhooks: endpoints with their state; create, edit, enable/disable,
// rotate the secret, send a test event, delete; the delivery log of one
// endpoint with every attempt, and retry.

import { ApiError, del, get, getAll, patch, post } from "../api.js";
import { badge, busy, confirmDanger, empty, h, loading, modal, mount, notify, showError, showSecret, table, when, whenText } from "../ui.js";

const EVENTS = ["generation.completed", "generation.failed", "voice.ready"];
const DELIVERY_KIND = { succeeded: "good", delivered: "good", pending: "warn", failed: "bad" };

function eventBoxes(selected) {
  return EVENTS.map((e) => h("input", { type: "checkbox", name: "event", value: e, checked: selected.includes(e) }));
}

function endpointState(e) {
  if (!e.enabled) return [badge("disabled", "bad"), e.disabledReason ? h("div.hint", e.disabledReason) : null];
  return badge("enabled", "good");
}

export async function render(root) {
  let alive = true;
  let timer = null;
  let endpoints = [];
  let selected = null;
  let watchUntil = 0; // keep refreshing the log this long after a test or retry
  const listArea = h("div", { id: "webhook-list" }, loading());
  const detail = h("div", { id: "webhook-detail" });

  const url = h("input", { id: "webhook-url", type: "url", required: true, placeholder: "https://example.com/webhooks/voiceprod" });
  const description = h("input", { id: "webhook-description", maxlength: 500, placeholder: "optional" });
  const boxes = eventBoxes(["generation.completed"]);
  const create = h("button.primary", { type: "submit", id: "webhook-create" }, "Add endpoint");
  const form = h(
    "form.card",
    { id: "webhook-form" },
    h("h2", "New endpoint"),
    h("div.grid2", h("div", h("label", { for: "webhook-url" }, "URL"), url), h("div", h("label", { for: "webhook-description" }, "Description"), description)),
    h("fieldset", h("legend", "Events"), h("div.scopes", boxes.map((b) => h("label.check", b, h("code", b.value))))),
    h("div.end", create),
  );
  mount(root, h("h1", "Webhooks"), h("div.card", h("h2", "Endpoints"), listArea), detail, form);

  async function load() {
    try {
      endpoints = await getAll("/webhooks", { limit: 100 });
      if (!alive) return;
      drawList();
      if (selected) {
        const again = endpoints.find((e) => e.id === selected);
        if (again) await showDetail(again);
        else {
          selected = null;
          detail.replaceChildren();
        }
      }
    } catch (e) {
      mount(listArea, h("p.notice.error", e instanceof ApiError ? e.friendly : String(e)));
    }
  }

  function drawList() {
    mount(
      listArea,
      endpoints.length
        ? table(
            [
              { label: "URL", cell: (e) => [h("code.url", e.url), e.description ? h("div.hint", e.description) : null] },
              { label: "Events", cell: (e) => h("div.chips", e.events.map((x) => h("span.chip", x))) },
              { label: "State", cell: endpointState },
              { label: "Last success", cell: (e) => when(e.lastSuccessAt) },
              {
                label: "",
                class: "actions",
                cell: (e) =>
                  h("button.secondary.small", { type: "button", onclick: () => ((selected = e.id), showDetail(e)) }, selected === e.id ? "Selected" : "Open"),
              },
            ],
            endpoints,
            { rowAttrs: (e) => ({ "data-webhook": e.id, class: selected === e.id ? "selected" : "" }) },
          )
        : empty("No webhook endpoints yet: add one below to hear about finished generations."),
    );
  }

  async function showDetail(e) {
    clearTimeout(timer);
    drawList();
    const log = h("div", { id: "delivery-log" }, loading());
    const actions = h(
      "div.row.wrap",
      h("button.secondary", { type: "button", id: "webhook-test", disabled: !e.enabled, onclick: (ev) => test(e, ev.currentTarget) }, "Send test event"),
      h("button.secondary", { type: "button", id: "webhook-edit", onclick: () => edit(e) }, "Edit"),
      h("button.secondary", { type: "button", id: "webhook-toggle", onclick: (ev) => toggle(e, ev.currentTarget) }, e.enabled ? "Disable" : "Enable"),
      h("button.secondary", { type: "button", id: "webhook-rotate", onclick: () => rotate(e) }, "Rotate secret"),
      h("button.danger", { type: "button", id: "webhook-delete", onclick: () => remove(e) }, "Delete"),
    );
    mount(
      detail,
      h(
        "div.card",
        { "data-webhook-detail": e.id },
        h("div.row.between", h("h2", h("code.url", e.url)), endpointState(e)),
        h(
          "p.hint",
          `Created ${whenText(e.createdAt)} · updated ${whenText(e.updatedAt)} · last success ${whenText(e.lastSuccessAt)}`,
          e.previousSecretExpiresAt ? ` · the previous secret signs too until ${whenText(e.previousSecretExpiresAt)}` : "",
        ),
        actions,
        h("div.row.between", h("h2", "Deliveries"), h("button.link", { type: "button", onclick: () => loadLog(e, log) }, "Refresh")),
        log,
      ),
    );
    await loadLog(e, log);
  }

  async function loadLog(e, log) {
    clearTimeout(timer);
    try {
      const page = await get(`/webhooks/${e.id}/deliveries`, { limit: 50 });
      if (!alive || selected !== e.id) return;
      mount(
        log,
        page.data.length
          ? table(
              [
                { label: "Created", cell: (d) => when(d.createdAt) },
                { label: "Event", cell: (d) => [h("code", d.event), h("div.hint", d.eventId)] },
                { label: "Status", cell: (d) => [badge(d.status, DELIVERY_KIND[d.status] || ""), d.nextAttemptAt ? h("div.hint", `next ${whenText(d.nextAttemptAt)}`) : null] },
                { label: "Attempts", cell: (d) => attempts(d) },
                {
                  label: "",
                  class: "actions",
                  cell: (d) => h("button.secondary.small", { type: "button", disabled: !e.enabled, onclick: (ev) => retry(e, d, ev.currentTarget, log) }, "Retry"),
                },
              ],
              page.data,
              { rowAttrs: (d) => ({ "data-delivery": d.id, "data-status": d.status }) },
            )
          : empty("No deliveries yet: send a test event."),
      );
      if (page.data.some((d) => d.status === "pending") || Date.now() < watchUntil) {
        timer = setTimeout(() => alive && selected === e.id && loadLog(e, log), 2000);
      }
    } catch (err) {
      mount(log, h("p.notice.error", err instanceof ApiError ? err.friendly : String(err)));
    }
  }

  function attempts(d) {
    if (!d.attempts.length) return h("span.hint", "none yet");
    return h(
      "ol.attempts",
      d.attempts.map((a) =>
        h(
          "li",
          h("details", h("summary", `#${a.attempt} · `, a.statusCode ? badge(String(a.statusCode), a.statusCode < 300 ? "good" : "bad") : badge("no response", "bad"), ` · ${a.durationMs} ms · ${whenText(a.createdAt)}`),
            a.error ? h("p.hint", `Error: ${a.error}`) : null,
            h("pre.response", a.responseBody ? a.responseBody : "(empty response body)"),
          ),
        ),
      ),
    );
  }

  async function test(e, button) {
    await busy(button, async () => {
      try {
        const sent = await post(`/webhooks/${e.id}/test`, {});
        notify(`Test event ${sent.eventId} sent.`, "ok");
        watchUntil = Date.now() + 10_000;
        await load();
      } catch (err) {
        showError(err, "Sending the test event");
      }
    });
  }

  async function retry(e, d, button, log) {
    await busy(button, async () => {
      try {
        await post(`/webhooks/${e.id}/deliveries/${d.id}/retry`, {});
        notify("Delivery queued again.", "ok");
        watchUntil = Date.now() + 10_000;
        await loadLog(e, log);
      } catch (err) {
        showError(err, "Retrying");
      }
    });
  }

  async function edit(e) {
    const u = h("input", { id: "edit-url", type: "url", required: true, value: e.url });
    const d = h("input", { id: "edit-description", maxlength: 500, value: e.description || "" });
    const b = eventBoxes(e.events);
    const answer = await modal(
      "Edit endpoint",
      h(
        "div",
        h("label", { for: "edit-url" }, "URL"),
        u,
        h("label", { for: "edit-description" }, "Description"),
        d,
        h("fieldset", h("legend", "Events"), h("div.scopes", b.map((x) => h("label.check", x, h("code", x.value))))),
      ),
      [
        { label: "Cancel", value: "cancel" },
        { label: "Save", value: "ok", kind: "primary" },
      ],
    );
    if (answer !== "ok") return;
    try {
      await patch(`/webhooks/${e.id}`, {
        url: u.value.trim(),
        description: d.value.trim() || null,
        events: b.filter((x) => x.checked).map((x) => x.value),
      });
      notify("Endpoint saved.", "ok");
      await load();
    } catch (err) {
      showError(err, "Saving the endpoint");
    }
  }

  async function toggle(e, button) {
    await busy(button, async () => {
      try {
        await patch(`/webhooks/${e.id}`, { enabled: !e.enabled });
        notify(e.enabled ? "Endpoint disabled: no events are sent to it." : "Endpoint enabled.", "ok");
        await load();
      } catch (err) {
        showError(err);
      }
    });
  }

  async function rotate(e) {
    const ok = await confirmDanger(
      "Rotate the signing secret?",
      "A new secret signs every delivery from now on; the old one keeps signing too for 24 hours, so receivers can switch without losing events.",
      "Rotate secret",
    );
    if (!ok) return;
    try {
      const rotated = await post(`/webhooks/${e.id}/rotate-secret`, {});
      await load();
      await showSecret("New signing secret", rotated.secret);
    } catch (err) {
      showError(err, "Rotating the secret");
    }
  }

  async function remove(e) {
    const ok = await confirmDanger("Delete this endpoint?", `${e.url} will receive no more events, and its delivery log goes too.`, "Delete endpoint");
    if (!ok) return;
    try {
      await del(`/webhooks/${e.id}`);
      selected = null;
      detail.replaceChildren();
      notify("Endpoint deleted.", "ok");
      await load();
    } catch (err) {
      showError(err, "Deleting the endpoint");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const created = await busy(create, async () => {
      const events = boxes.filter((b) => b.checked).map((b) => b.value);
      if (!events.length) {
        notify("Pick at least one event.", "error");
        return null;
      }
      try {
        const made = await post("/webhooks", { url: url.value.trim(), description: description.value.trim() || undefined, events });
        form.reset();
        for (const b of boxes) b.checked = b.value === "generation.completed";
        selected = made.id;
        await load();
        return made;
      } catch (err) {
        showError(err, "Adding the endpoint");
        return null;
      }
    });
    if (created) {
      await showSecret("Endpoint added", created.secret, "This is the signing secret (Standard Webhooks). Copy it now: it is shown only once.");
    }
  });

  await load();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
