// Generations: the recent ones with status, voice, duration, credits;
// play in the page, download, delete. Refreshes while any is processing.

import { ApiError, audioUrl, del, get } from "../api.js";
import { badge, busy, confirmDanger, download, empty, h, loading, mount, notify, num, seconds, showError, table, when } from "../ui.js";
import { isNatural, loadVoices, voiceName } from "../voices.js";

const STATUS_KIND = { completed: "good", processing: "warn", failed: "bad" };

export async function render(root) {
  let alive = true;
  let timer = null;
  let current = null; // { id, url } of what the player holds
  let rows = [];
  let cursor = null;
  let voices = [];
  const filter = h(
    "select",
    { id: "gen-status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"),
    ["processing", "completed", "failed"].map((s) => h("option", { value: s }, s)),
  );
  const refresh = h("button.secondary", { type: "button", id: "gen-refresh" }, "Refresh");
  const listArea = h("div", { id: "gen-list" }, loading());
  const more = h("button.secondary", { type: "button", id: "gen-more", hidden: true }, "Load more");
  const audio = h("audio", { id: "gen-player", controls: true, preload: "auto" });
  const nowPlaying = h("span.hint", { id: "gen-now" }, "Pick a generation to play.");
  mount(
    root,
    h("h1", "Generations"),
    h("div.card.player", h("div.row", audio, nowPlaying)),
    h("div.card", h("div.row.between", h("h2", "Recent"), h("div.filters", filter, refresh)), listArea, h("div.row.center", more)),
  );

  loadVoices().then(
    (v) => {
      voices = v;
      draw();
    },
    () => {},
  );

  function draw() {
    if (!rows.length) {
      mount(listArea, empty(filter.value ? `No ${filter.value} generations.` : "No generations yet: create one in the Playground."));
      return;
    }
    mount(
      listArea,
      table(
        [
          { label: "Created", cell: (g) => when(g.createdAt) },
          // The ids differ at the end (the start is a time): the tail, the whole on hover.
          { label: "Id", cell: (g) => h("code", { title: g.id }, `${g.id.slice(0, 4)}…${g.id.slice(-8)}`) },
          { label: "Status", cell: (g) => (g.deleted ? badge("deleted") : badge(g.status, STATUS_KIND[g.status] || "")) },
          {
            label: "Voice",
            cell: (g) => {
              const v = voices.find((x) => x.id === g.voiceId);
              return [voiceName(voices, g.voiceId), isNatural(v) ? [" ", badge("natural", "neural")] : null];
            },
          },
          { label: "Format", cell: (g) => g.format },
          { label: "Duration", class: "num", cell: (g) => seconds(g.durationMs) },
          { label: "Characters", class: "num", cell: (g) => num(g.characters) },
          { label: "Credits", class: "num", cell: (g) => num(g.credits) },
          {
            label: "",
            class: "actions",
            cell: (g) => [
              g.status === "completed" && !g.deleted && g.format !== "pcm"
                ? h("button.secondary.small", { type: "button", onclick: (e) => play(g, e.currentTarget) }, "Play")
                : null,
              g.status === "completed" && !g.deleted
                ? h("button.secondary.small", { type: "button", onclick: (e) => save(g, e.currentTarget) }, "Download")
                : null,
              g.deleted ? null : h("button.danger.small", { type: "button", onclick: () => remove(g) }, "Delete"),
            ],
          },
        ],
        rows,
        { rowAttrs: (g) => ({ "data-generation": g.id }) },
      ),
    );
  }

  async function fetchAudio(g) {
    if (current && current.id === g.id) return current.url;
    const fetched = await audioUrl(g.id);
    if (current) URL.revokeObjectURL(current.url);
    current = { id: g.id, url: fetched.url };
    return fetched.url;
  }

  async function play(g, button) {
    await busy(button, async () => {
      try {
        const url = await fetchAudio(g);
        if (audio.src !== url) audio.src = url;
        nowPlaying.textContent = `${g.id} · ${voiceName(voices, g.voiceId)} · ${seconds(g.durationMs)}`;
        await audio.play().catch(() => {});
      } catch (e) {
        showError(e, "Playing");
      }
    });
  }

  async function save(g, button) {
    await busy(button, async () => {
      try {
        download(await fetchAudio(g), `${g.id}.${g.format}`);
      } catch (e) {
        showError(e, "Downloading");
      }
    });
  }

  async function remove(g) {
    const ok = await confirmDanger(
      `Delete ${g.id}?`,
      "Its audio, alignment and text are removed for good; the accounting (credits, characters) stays.",
      "Delete",
    );
    if (!ok) return;
    try {
      await del(`/generations/${g.id}`);
      if (current && current.id === g.id) {
        audio.pause();
        audio.removeAttribute("src");
        URL.revokeObjectURL(current.url);
        current = null;
        nowPlaying.textContent = "Pick a generation to play.";
      }
      notify(`${g.id} deleted.`, "ok");
      await load();
    } catch (e) {
      showError(e, "Deleting");
    }
  }

  async function load(append = false) {
    clearTimeout(timer);
    try {
      const page = await get("/generations", { limit: 20, status: filter.value, cursor: append ? cursor : undefined });
      if (!alive) return;
      rows = append ? rows.concat(page.data) : page.data;
      cursor = page.nextCursor;
      more.hidden = !page.hasMore;
      draw();
      if (rows.some((g) => g.status === "processing")) {
        timer = setTimeout(() => alive && !append && load(), 2000);
      }
    } catch (e) {
      if (alive) mount(listArea, h("p.notice.error", e instanceof ApiError ? e.friendly : String(e)));
    }
  }

  filter.addEventListener("change", () => load());
  refresh.addEventListener("click", () => load());
  more.addEventListener("click", () => busy(more, () => load(true)));
  await load();

  return () => {
    alive = false;
    clearTimeout(timer);
    audio.pause();
    if (current) URL.revokeObjectURL(current.url);
  };
}
