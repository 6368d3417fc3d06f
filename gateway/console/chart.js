// A stacked bar chart in SVG, drawn by hand: one bar per day, one colour
// per series (a key), with gridlines, axis labels, a legend and tooltips.

const SVG = "http://www.w3.org/2000/svg";

export const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b"];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A "nice" step for about `n` gridlines up to `max`. */
function niceStep(max, n = 4) {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/**
 * days: ["2026-11-01", …]; series: [{ label, color, values: [n per day] }].
 * Returns an <svg> element (negative values, net refunds, are drawn as 0).
 */
export function stackedBars(days, series, { width = 860, height = 260, unit = "credits" } = {}) {
  const pad = { top: 12, right: 12, bottom: 28, left: 48 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = days.map((_, i) => series.reduce((sum, se) => sum + Math.max(0, se.values[i] || 0), 0));
  const maxTotal = Math.max(0, ...totals);
  const step = maxTotal > 0 ? Math.max(1, niceStep(maxTotal)) : 1;
  const top = Math.max(step, Math.ceil(maxTotal / step) * step);
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": `${unit} per day, ${days[0] || ""} to ${days[days.length - 1] || ""}, total ${totals.reduce((a, b) => a + b, 0)}`,
    "data-total": totals.reduce((a, b) => a + b, 0),
  });
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }));
    svg.append(s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const labelEvery = Math.ceil(days.length / 10);
  days.forEach((day, i) => {
    const x = pad.left + slot * i + (slot - barW) / 2;
    let base = 0;
    const group = s("g", { class: "bar", "data-day": day, "data-total": totals[i] });
    const lines = [`${day}: ${totals[i]} ${unit}`];
    for (const se of series) {
      const v = Math.max(0, se.values[i] || 0);
      if (v > 0) {
        const rect = s("rect", { x, y: y(base + v), width: barW, height: Math.max(1, y(base) - y(base + v)), fill: se.color, rx: 2 });
        rect.append(s("title", {}, `${day} · ${se.label}: ${v} ${unit}`));
        group.append(rect);
        lines.push(`${se.label}: ${v}`);
      }
      base += v;
    }
    // A transparent column over the whole slot, so hovering anywhere shows the day.
    const hit = s("rect", { x: pad.left + slot * i, y: pad.top, width: slot, height: plotH, class: "hit" });
    hit.append(s("title", {}, lines.join("\n")));
    group.append(hit);
    svg.append(group);
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle", class: "tick" }, day.slice(5)));
    }
  });
  return svg;
}
