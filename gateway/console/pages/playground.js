// Playground: text, a voice (searchable; natural voices first and marked), format and speed;
// generate (202, then poll), play in the page, download, credits charged.

import { ApiError, audioUrl, get, request, withRetry } from "../api.js";
import { badge, busy, download, h, mount, num, seconds, showError } from "../ui.js";
import { isNatural, languages, loadVoices, matches, naturalFirst } from "../voices.js";

const DEFAULT_VOICE = "voice_8f2a1c";
const SAMPLE = "Welcome to Voice Production AI. Let's build something that speaks.";
const FORMATS = [
  ["mp3", "MP3"],
  ["wav", "WAV"],
  ["ogg", "Ogg Opus"],
  ["flac", "FLAC"],
  ["pcm", "PCM s16le (download only)"],
];
const MAX_WAIT_MS = 5 * 60 * 1000;

/** A v4 UUID; crypto.randomUUID exists only in secure contexts. */
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function render(root) {
  let alive = true;
  let blobUrl = null;
  const text = h("textarea", { id: "text", rows: 7, maxlength: 100000, "aria-label": "Text to speak" });
  text.value = SAMPLE;
  const count = h("span.hint", { id: "char-count" });
  const updateCount = () => (count.textContent = `${num(text.value.length)} characters`);
  text.addEventListener("input", updateCount);
  updateCount();

  const search = h("input", { id: "voice-search", type: "search", placeholder: "Search voices…", "aria-label": "Search voices" });
  const language = h("select", { id: "voice-language", "aria-label": "Language" }, h("option", { value: "" }, "All languages"));
  const gender = h(
    "select",
    { id: "voice-gender", "aria-label": "Gender" },
    h("option", { value: "" }, "Any gender"),
    ["female", "male", "neutral"].map((g) => h("option", { value: g }, g)),
  );
  const naturalOnly = h("input", { id: "voice-natural", type: "checkbox" });
  const list = h("select", { id: "voice", size: 9, "aria-label": "Voice", required: true });
  const voiceInfo = h("div.voice-info", { id: "voice-info" });
  const voiceCount = h("span.hint");

  const format = h("select", { id: "format" }, FORMATS.map(([v, label]) => h("option", { value: v }, label)));
  const speed = h("input", { id: "speed", type: "range", min: 0.5, max: 2, step: 0.05, value: "1" });
  const speedOut = h("output", { for: "speed", id: "speed-value" }, "1.00×");
  speed.addEventListener("input", () => (speedOut.textContent = `${Number(speed.value).toFixed(2)}×`));

  const generate = h("button.primary.big", { type: "submit", id: "generate" }, "Generate speech");
  const status = h("div.result-status", { id: "result-status" }, "Nothing generated yet.");
  const audio = h("audio", { id: "player", controls: true, preload: "auto", hidden: true });
  const downloadButton = h("button.secondary", { type: "button", id: "download", hidden: true }, "Download");
  const facts = h("dl.facts", { id: "result-facts" });

  const form = h(
    "form.playground",
    { id: "playground-form" },
    h(
      "div.card",
      h("h2", "Text"),
      text,
      h("div.row.between", count, h("button.link", { type: "button", onclick: () => ((text.value = ""), updateCount(), text.focus()) }, "Clear")),
      h("h2", "Voice"),
      h("div.filters", search, language, gender, h("label.check", naturalOnly, "Natural only")),
      list,
      h("div.row.between", voiceInfo, voiceCount),
    ),
    h(
      "div.side",
      h(
        "div.card",
        h("h2", "Output"),
        h("label", { for: "format" }, "Format"),
        format,
        h("label", { for: "speed" }, "Speed ", speedOut),
        speed,
        generate,
      ),
      h("div.card.result", { id: "result" }, h("h2", "Result"), status, audio, facts, downloadButton),
    ),
  );
  mount(root, h("h1", "Playground"), form);

  let voices = [];
  const fill = () => {
    const selected = list.value;
    const shown = voices.filter(
      (v) =>
        matches(v, search.value) &&
        (!language.value || v.language === language.value) &&
        (!gender.value || v.gender === gender.value) &&
        (!naturalOnly.checked || isNatural(v)),
    );
    mount(
      list,
      shown.map((v) =>
        h(
          "option",
          { value: v.id, title: v.description || "", "data-natural": String(isNatural(v)) },
          `${v.name} — ${v.language}${v.gender ? ` · ${v.gender}` : ""}${v.type === "cloned" ? " · cloned" : ""}${isNatural(v) ? `  ◆ natural (${v.engine})` : ""}`,
        ),
      ),
    );
    if (shown.some((v) => v.id === selected)) list.value = selected;
    else if (shown.length) list.value = shown[0].id;
    voiceCount.textContent = `${shown.length} of ${voices.length} voices`;
    describe();
  };
  const describe = () => {
    const v = voices.find((x) => x.id === list.value);
    mount(
      voiceInfo,
      v
        ? [h("strong", v.name), " ", isNatural(v) ? badge("natural", "neural") : null, " ", h("span.hint", v.description || v.id)]
        : h("span.hint", voices.length ? "No voice matches the filters." : ""),
    );
  };
  for (const el of [search, language, gender, naturalOnly]) el.addEventListener("input", fill);
  list.addEventListener("change", describe);

  try {
    voices = naturalFirst(await loadVoices());
    mount(language, h("option", { value: "" }, "All languages"), languages(voices).map((l) => h("option", { value: l }, l)));
    fill();
    if (voices.some((v) => v.id === DEFAULT_VOICE)) {
      list.value = DEFAULT_VOICE;
      describe();
    }
    if (!voices.length) mount(voiceInfo, h("span.hint", "This workspace has no voices."));
  } catch (e) {
    showError(e, "Loading voices");
  }

  const setStatus = (message, kind = "") => {
    status.className = `result-status ${kind}`;
    status.textContent = message;
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(generate, async () => {
      if (!list.value) {
        setStatus("Pick a voice first.", "error");
        return;
      }
      if (blobUrl) URL.revokeObjectURL(blobUrl);
      blobUrl = null;
      audio.hidden = true;
      audio.removeAttribute("src");
      downloadButton.hidden = true;
      facts.replaceChildren();
      generate.textContent = "Generating…";
      setStatus("Submitting…");
      const body = { text: text.value, voiceId: list.value, format: format.value, speed: Number(speed.value) };
      try {
        const { data: accepted, response } = await request("POST", "/generations", {
          body,
          headers: { "Idempotency-Key": uuid() },
        });
        const charged = response.headers.get("X-Credits-Charged") ?? accepted.credits;
        root.dataset.generation = accepted.id;
        setStatus(`Processing ${accepted.id}… (${charged} credits charged)`);
        const started = Date.now();
        let g = accepted;
        let wait = 300;
        while (alive && g.status === "processing" && Date.now() - started < MAX_WAIT_MS) {
          await sleep(wait);
          wait = Math.min(1500, wait * 1.4);
          // A 429 or 503 while polling is waited out, not shown.
          g = await withRetry(() => get(`/generations/${accepted.id}`));
        }
        if (!alive) return;
        mount(
          facts,
          h("dt", "Generation"),
          h("dd", h("code", g.id)),
          h("dt", "Credits charged"),
          h("dd", { id: "credits-charged" }, String(g.credits ?? charged)),
          h("dt", "Characters"),
          h("dd", num(g.characters)),
          h("dt", "Duration"),
          h("dd", seconds(g.durationMs)),
        );
        if (g.status === "failed") {
          const reason = g.error && (g.error.message || g.error.code);
          setStatus(`The generation failed${reason ? `: ${reason}` : ""}. Its credits are refunded.`, "error");
          return;
        }
        if (g.status !== "completed") {
          setStatus(`Still ${g.status} after ${MAX_WAIT_MS / 60000} minutes; see Generations later.`, "error");
          return;
        }
        setStatus("Fetching the audio…");
        const fetched = await audioUrl(g.id);
        if (!alive) {
          URL.revokeObjectURL(fetched.url);
          return;
        }
        blobUrl = fetched.url;
        const filename = `${g.id}.${g.format || format.value}`;
        downloadButton.onclick = () => download(blobUrl, filename);
        downloadButton.hidden = false;
        facts.append(h("dt", "Size"), h("dd", { id: "audio-size" }, `${num(fetched.size)} bytes`));
        if (g.format === "pcm") {
          setStatus("Done. Raw PCM cannot be played in a browser: download it.", "ok");
          return;
        }
        audio.src = blobUrl;
        audio.hidden = false;
        setStatus("Done.", "ok");
        audio.play().catch(() => {
          // Autoplay refused: the controls are there.
        });
      } catch (e) {
        setStatus(e instanceof ApiError ? e.friendly : String(e), "error");
      }
    });
  });

  return () => {
    alive = false;
    audio.pause();
    if (blobUrl) URL.revokeObjectURL(blobUrl);
  };
}
