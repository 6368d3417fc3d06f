// Usage: this period's credits against the allowance, credits per day for
// a chosen range split by key (a stacked SVG chart), and a table per key.

import { ApiError, get, withRetry } from "../api.js";
import { PALETTE, stackedBars } from "../chart.js";
import { empty, h, loading, mount, num, showError, table } from "../ui.js";

const DAY = 86400000;
const iso = (d) => d.toISOString().slice(0, 10);
const today = () => iso(new Date());
const daysAgo = (n) => iso(new Date(Date.now() - n * DAY));

/** Runs `fn` over `items`, `limit` at a time. */
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export async function render(root) {
  const meter = h("div.card.period", { id: "period" }, loading());
  const preset = h(
    "select",
    { id: "range-preset", "aria-label": "Range" },
    h("option", { value: "7" }, "Last 7 days"),
    h("option", { value: "30", selected: true }, "Last 30 days"),
    h("option", { value: "90" }, "Last 90 days"),
    h("option", { value: "custom" }, "Custom"),
  );
  const from = h("input", { id: "range-from", type: "date", value: daysAgo(29), max: today(), "aria-label": "From (UTC)" });
  const to = h("input", { id: "range-to", type: "date", value: today(), max: today(), "aria-label": "To (UTC)" });
  const refresh = h("button.secondary", { type: "button", id: "usage-refresh" }, "Refresh");
  const chartArea = h("div.chart-area", { id: "usage-chart" });
  const tableArea = h("div", { id: "usage-table" });
  mount(
    root,
    h("h1", "Usage"),
    meter,
    h(
      "div.card",
      h("div.row.between", h("h2", "Credits per day, by key"), h("div.filters", preset, from, h("span", "to"), to, refresh)),
      chartArea,
      h("h2", "Per key"),
      tableArea,
    ),
  );

  preset.addEventListener("change", () => {
    if (preset.value !== "custom") {
      from.value = daysAgo(Number(preset.value) - 1);
      to.value = today();
      load();
    }
  });
  for (const el of [from, to]) {
    el.addEventListener("change", () => {
      preset.value = "custom";
      load();
    });
  }
  refresh.addEventListener("click", () => {
    loadPeriod();
    load();
  });

  async function loadPeriod() {
    try {
      const w = await get("/workspace");
      const used = w.creditsUsed;
      const included = w.creditsIncluded;
      const pct = included ? Math.min(100, (used / included) * 100) : 0;
      const bar = h("div.meter-fill", { id: "meter-fill" });
      bar.style.width = `${pct}%`;
      if (pct >= 90) bar.classList.add("high");
      mount(
        meter,
        h("div.row.between", h("h2", "This period"), h("span.hint", `${w.period.start.slice(0, 10)} – ${w.period.end.slice(0, 10)} (UTC)`)),
        h(
          "p.big-number",
          { id: "credits-used" },
          num(used),
          h("span", included === null ? " credits used (unlimited plan)" : ` of ${num(included)} credits used`),
        ),
        included === null ? null : h("div.meter", { role: "meter", "aria-valuemin": 0, "aria-valuemax": included, "aria-valuenow": used }, bar),
        h(
          "p.hint",
          `Plan ${w.plan}`,
          included === null ? "" : ` · ${num(w.creditsRemaining)} credits left`,
          w.limits && w.limits.requestsPerSecond ? ` · ${w.limits.requestsPerSecond} requests/s per key` : "",
          w.limits && w.limits.maxInFlight ? ` · ${w.limits.maxInFlight} generations at once` : "",
        ),
      );
    } catch (e) {
      mount(meter, h("p.notice.error", e instanceof ApiError ? e.friendly : String(e)));
    }
  }

  let generation = 0;
  async function load() {
    const mine = ++generation;
    if (!from.value || !to.value || from.value > to.value) {
      mount(chartArea, h("p.notice.error", "Choose a start day on or before the end day."));
      return;
    }
    mount(chartArea, loading());
    const range = { from: from.value, to: to.value };
    try {
      const [byDay, byKey, keyList] = await Promise.all([
        withRetry(() => get("/usage", { ...range, groupBy: "day" })),
        withRetry(() => get("/usage", { ...range, groupBy: "key" })),
        get("/keys").then(
          (r) => r.data,
          () => [], // without keys:manage the table shows key ids
        ),
      ]);
      const names = new Map(keyList.map((k) => [k.id, k]));
      const days = byDay.data.map((b) => b.date);
      const keyIds = byKey.data.map((b) => b.keyId);
      const label = (id) => (id === null ? "deleted keys" : names.get(id) ? names.get(id).name : id);
      const color = new Map(keyIds.map((id, i) => [id, PALETTE[i % PALETTE.length]]));
      let series;
      if (keyIds.length <= 1) {
        series = [{ id: keyIds[0] ?? null, label: keyIds.length ? label(keyIds[0]) : "credits", color: PALETTE[0], values: byDay.data.map((b) => b.credits) }];
      } else {
        // The API groups by day or by key: split the days that have usage
        // by asking for each of them grouped by key.
        const busyDays = byDay.data.filter((b) => b.credits !== 0 || b.generations !== 0).map((b) => b.date);
        const perDay = await pool(busyDays, 4, (d) => withRetry(() => get("/usage", { from: d, to: d, groupBy: "key" })));
        const lookup = new Map(busyDays.map((d, i) => [d, perDay[i].data]));
        series = keyIds.map((id) => ({
          id,
          label: label(id),
          color: color.get(id),
          values: days.map((d) => {
            const b = (lookup.get(d) || []).find((x) => x.keyId === id);
            return b ? b.credits : 0;
          }),
        }));
      }
      if (mine !== generation) return;
      const chart = stackedBars(days, series);
      mount(
        chartArea,
        h("p.hint", { id: "usage-total" }, `${num(byDay.total.credits)} credits · ${num(byDay.total.generations)} generations · ${num(byDay.total.characters)} characters from ${byDay.from} to ${byDay.to} (UTC)`),
        chart,
        keyIds.length ? h("ul.legend", series.map((se) => h("li", h("span.swatch", { dataset: { color: se.color } }), se.label))) : null,
        byDay.total.generations === 0 ? h("p.hint", "No usage in this range yet: generate speech in the Playground.") : null,
      );
      for (const sw of chartArea.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
      mount(
        tableArea,
        byKey.data.length
          ? table(
              [
                { label: "Key", cell: (b) => [h("span.swatch", { dataset: { color: color.get(b.keyId) } }), label(b.keyId)] },
                { label: "Prefix", cell: (b) => (names.get(b.keyId) ? h("code", names.get(b.keyId).prefix) : "—") },
                { label: "Credits", class: "num", cell: (b) => num(b.credits) },
                { label: "Generations", class: "num", cell: (b) => num(b.generations) },
                { label: "Refunds", class: "num", cell: (b) => num(b.refunds) },
                { label: "Characters", class: "num", cell: (b) => num(b.characters) },
                { label: "Share", class: "num", cell: (b) => (byKey.total.credits ? `${Math.round((b.credits / byKey.total.credits) * 100)}%` : "—") },
              ],
              byKey.data,
            )
          : empty("No key used credits in this range."),
      );
      for (const sw of tableArea.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
    } catch (e) {
      if (mine !== generation) return;
      mount(chartArea, h("p.notice.error", e instanceof ApiError ? e.friendly : String(e)));
      tableArea.replaceChildren();
      if (!(e instanceof ApiError)) showError(e);
    }
  }

  loadPeriod();
  await load();
}
