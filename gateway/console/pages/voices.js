// Voices: browse and filter every voice (natural first) and hear each one's
// preview; design a voice from natural (Kokoro) voices with a weight each,
// hear the blend, save it; clone one from WAV samples and follow it until it
// is ready (with the similarity reached) or failed; delete the workspace's.
// Previews are GET /v1/voices/{id}/preview and, for an unsaved blend,
// GET /v1/voices/preview?recipe=…: rendered once per voice, not charged.

import { ApiError, del, get, post, postForm, previewUrl, withRetry } from "../api.js";
import { badge, busy, confirmDanger, empty, h, loading, mount, notify, showError } from "../ui.js";
import { isNatural, languages, loadVoices, matches, naturalFirst, resetVoices } from "../voices.js";

/** Rows shown at most; the filters narrow the rest. */
const MAX_ROWS = 150;
const MAX_PARTS = 4;
const MIN_PARTS = 2;
const POLL_MS = 2000;
const MAX_CLONE_WAIT_MS = 20 * 60 * 1000;
const MAX_SAMPLES = 20;
const ENGINES = ["kokoro", "piper", "espeak-ng"];
const TYPES = [
  ["preset", "Preset"],
  ["designed", "Designed"],
  ["cloned", "Cloned"],
];
const ENGLISH = ["en-US", "en-GB"];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A blendable voice: a Kokoro preset that is one pack (not a designed blend). */
function blendable(v) {
  return v.engine === "kokoro" && v.type === "preset" && !v.designed;
}

/** The engine a clone gets when the form names none (docs/voices-and-audio.md). */
function defaultEngine(language) {
  return ENGLISH.includes(language) ? "kokoro" : "espeak-ng";
}

/** `67% Bella + 33% Sky` from a recipe of `{voiceId, weight}`. */
function recipeText(recipe, byId) {
  if (!Array.isArray(recipe) || !recipe.length) return "";
  const total = recipe.reduce((s, p) => s + Number(p.weight || 0), 0) || 1;
  return recipe
    .map((p) => `${Math.round((100 * Number(p.weight || 0)) / total)}% ${byId.get(p.voiceId)?.name || p.voiceId}`)
    .join(" + ");
}

/** Whether this server's POST /v1/voices form takes `engine` (its OpenAPI document says). */
let engineField = null;
async function takesEngine() {
  if (engineField === null) {
    engineField = fetch("/openapi.json", { cache: "no-store", credentials: "omit" })
      .then((r) => (r.ok ? r.json() : {}))
      .then((doc) => Boolean(doc?.components?.schemas?.CloneVoiceForm?.properties?.engine))
      .catch(() => false);
  }
  return engineField;
}

export async function render(root) {
  let alive = true;
  const blobs = new Set();
  const keep = (url) => (blobs.add(url), url);

  // ------------------------------------------------------------ browse
  const search = h("input", { id: "voices-search", type: "search", placeholder: "Search voices…", "aria-label": "Search voices" });
  const language = h("select", { id: "voices-language", "aria-label": "Language" }, h("option", { value: "" }, "All languages"));
  const accent = h("select", { id: "voices-accent", "aria-label": "Accent" }, h("option", { value: "" }, "Any accent"));
  const gender = h(
    "select",
    { id: "voices-gender", "aria-label": "Gender" },
    h("option", { value: "" }, "Any gender"),
    ["female", "male", "neutral"].map((g) => h("option", { value: g }, g)),
  );
  const engine = h(
    "select",
    { id: "voices-engine", "aria-label": "Engine" },
    h("option", { value: "" }, "Any engine"),
    ENGINES.map((e) => h("option", { value: e }, e)),
  );
  const type = h(
    "select",
    { id: "voices-type", "aria-label": "Type" },
    h("option", { value: "" }, "Any type"),
    TYPES.map(([v, label]) => h("option", { value: v }, label)),
  );
  const count = h("span.hint", { id: "voices-count" });
  const list = h("div", { id: "voices-list" }, loading("Loading voices…"));
  const player = h("audio", { id: "voices-player", controls: true, preload: "auto", hidden: true });
  const playing = h("span.hint", { id: "voices-playing" }, "Press Play on a voice to hear its preview (not charged).");
  const size = h("span.hint", { id: "voices-player-size" });

  // ------------------------------------------------------------ design
  const designName = h("input", { id: "design-name", maxlength: 100, placeholder: "Narrator", autocomplete: "off" });
  const parts = h("div.design-parts", { id: "design-parts" });
  const addPart = h("button.secondary", { type: "button", id: "design-add" }, "Add a voice");
  const recipeLine = h("div.hint", { id: "design-recipe-text" });
  const recipeCode = h("code", { id: "design-recipe" });
  const designPreview = h("button.secondary", { type: "button", id: "design-preview" }, "Preview");
  const designSave = h("button.primary", { type: "submit", id: "design-save" }, "Save voice");
  const designPlayer = h("audio", { id: "design-player", controls: true, preload: "auto", hidden: true });
  const designResult = h("div.result-status", { id: "design-result" });

  // ------------------------------------------------------------ clone
  const cloneName = h("input", { id: "clone-name", maxlength: 100, placeholder: "My voice", autocomplete: "off", required: true });
  const cloneLanguage = h("select", { id: "clone-language" }, h("option", { value: "en-US" }, "en-US"));
  const cloneGender = h(
    "select",
    { id: "clone-gender" },
    h("option", { value: "" }, "Not said"),
    ["female", "male", "neutral"].map((g) => h("option", { value: g }, g)),
  );
  const cloneEngine = h("select", { id: "clone-engine" });
  const engineHint = h("div.hint", { id: "clone-engine-hint" });
  const cloneDescription = h("input", { id: "clone-description", maxlength: 500, autocomplete: "off" });
  const cloneSamples = h("input", { id: "clone-samples", type: "file", multiple: true, accept: ".wav,audio/wav,audio/x-wav,audio/wave" });
  const cloneSubmit = h("button.primary", { type: "submit", id: "clone-submit" }, "Clone voice");
  const cloneProgress = h("progress", { id: "clone-progress", hidden: true });
  const cloneStatus = h("div.result-status", { id: "clone-status" }, "Upload 1 to 20 WAV recordings of one speaker (10 s or more of speech in all).");
  const cloneFacts = h("dl.facts", { id: "clone-facts" });

  const designForm = h(
    "form.card",
    { id: "design-form" },
    h("h2", "Design a voice"),
    h("p.hint", "Blend two to four natural (Kokoro) voices of one language; each slider is that voice's weight."),
    h("label", { for: "design-name" }, "Name"),
    designName,
    parts,
    h("div.row.wrap", addPart, designPreview, designSave),
    recipeLine,
    h("div.hint", "Recipe: ", recipeCode),
    designPlayer,
    designResult,
  );
  const cloneForm = h(
    "form.card",
    { id: "clone-form" },
    h("h2", "Clone a voice"),
    h("div.grid2", h("div", h("label", { for: "clone-name" }, "Name"), cloneName), h("div", h("label", { for: "clone-language" }, "Language"), cloneLanguage)),
    h("div.grid2", h("div", h("label", { for: "clone-gender" }, "Gender"), cloneGender), h("div", h("label", { for: "clone-engine" }, "Engine"), cloneEngine)),
    engineHint,
    h("label", { for: "clone-description" }, "Description (optional)"),
    cloneDescription,
    h("label", { for: "clone-samples" }, "WAV samples"),
    cloneSamples,
    cloneSubmit,
    cloneProgress,
    cloneStatus,
    cloneFacts,
  );

  mount(
    root,
    h("h1", "Voices"),
    h(
      "div.card",
      { id: "voices-browse" },
      h("div.filters", search, language, accent, gender, engine, type),
      h("div.player.voices-player", h("div.row.between", playing, size), player),
      list,
      h("div.row.between", count),
    ),
    h("div.voices-make", designForm, cloneForm),
  );

  // ------------------------------------------------------------ state
  let voices = [];
  let byId = new Map();
  let highlight = null;

  const play = async (audio, label, fetched) => {
    audio.pause();
    audio.src = fetched.url;
    audio.hidden = false;
    audio.dataset.size = String(fetched.size);
    if (label) playing.textContent = label;
    audio.play().catch(() => {
      // Autoplay refused: the controls are there.
    });
  };

  const previewOf = (voice, button) =>
    busy(button, async () => {
      button.textContent = "Loading…";
      try {
        const fetched = await previewUrl({ id: voice.id });
        if (!alive) return URL.revokeObjectURL(fetched.url);
        keep(fetched.url);
        size.textContent = `${fetched.size.toLocaleString()} bytes`;
        await play(player, `${voice.name} (${voice.language})`, fetched);
      } catch (e) {
        showError(e, `The preview of ${voice.name}`);
      }
    });

  const remove = async (voice, button) => {
    const sure = await confirmDanger(
      "Delete this voice?",
      `${voice.name} (${voice.id}) is deleted from the workspace: generations can no longer use it. This cannot be undone.`,
      "Delete voice",
    );
    if (!sure) return;
    await busy(button, async () => {
      try {
        await del(`/voices/${encodeURIComponent(voice.id)}`);
        notify(`${voice.name} was deleted.`, "ok");
        await reload();
      } catch (e) {
        showError(e, `Deleting ${voice.name}`);
      }
    });
  };

  const row = (v) => {
    const listen = h("button.secondary.small", { type: "button", "data-action": "preview", "aria-label": `Play a preview of ${v.name}` }, "▶ Play");
    listen.addEventListener("click", () => previewOf(v, listen));
    const own = v.type !== "preset";
    const status = own && v.status && v.status !== "ready" ? v.status : "";
    const remover = own ? h("button.danger.small", { type: "button", "data-action": "delete" }, "Delete") : null;
    if (remover) remover.addEventListener("click", () => remove(v, remover));
    if (status) listen.disabled = true;
    const recipe = recipeText(v.recipe, byId);
    return h(
      "tr",
      {
        class: v.id === highlight ? "selected" : "",
        dataset: {
          voiceId: v.id,
          language: v.language || "",
          accent: v.accent || "",
          gender: v.gender || "",
          engine: v.engine || "",
          type: v.type || "",
          natural: String(isNatural(v)),
        },
      },
      h(
        "td",
        h("strong", v.name),
        " ",
        isNatural(v) ? badge("natural", "neural") : null,
        " ",
        v.designed ? badge("designed") : null,
        recipe ? h("div.hint.recipe", recipe) : null,
        v.description && !recipe ? h("div.hint.describe", { title: v.description }, v.description) : null,
        h("div", h("code.hint", v.id)),
      ),
      h("td", v.language),
      h("td", v.accent || "—"),
      h("td", v.gender || "—"),
      h("td", v.engine),
      h(
        "td",
        v.type,
        status ? [" ", badge(status, status === "failed" ? "bad" : "warn")] : null,
        typeof v.similarity === "number" ? h("div.hint", `similarity ${v.similarity.toFixed(2)}`) : null,
      ),
      h("td.actions", listen, remover),
    );
  };

  const fill = () => {
    const shown = voices.filter(
      (v) =>
        matches(v, search.value) &&
        (!language.value || v.language === language.value) &&
        (!accent.value || (v.accent || "").toLowerCase() === accent.value) &&
        (!gender.value || v.gender === gender.value) &&
        (!engine.value || v.engine === engine.value) &&
        (!type.value || v.type === type.value),
    );
    const rows = shown.slice(0, MAX_ROWS);
    mount(
      list,
      shown.length
        ? h(
            "div.table-wrap.voices-table",
            h(
              "table",
              h("thead", h("tr", ["Voice", "Language", "Accent", "Gender", "Engine", "Type", ""].map((c) => h("th", c)))),
              h("tbody", rows.map(row)),
            ),
          )
        : empty(voices.length ? "No voice matches the filters." : "No voices."),
    );
    count.textContent =
      shown.length > rows.length
        ? `${shown.length} of ${voices.length} voices; the first ${rows.length} are shown — narrow the filters to see the rest.`
        : `${shown.length} of ${voices.length} voices`;
  };
  for (const el of [search, language, accent, gender, engine, type]) el.addEventListener("input", fill);

  // ------------------------------------------------------------ design
  const partRows = () => [...parts.querySelectorAll(".design-part")];
  const design = () =>
    partRows().map((p) => ({ voiceId: p.querySelector("select").value, weight: Number(p.querySelector("input").value) }));
  const recipeOf = (from) => from.map((p) => `${p.voiceId}(${p.weight})`).join("+");
  const updateDesign = () => {
    const from = design();
    const total = from.reduce((s, p) => s + p.weight, 0) || 1;
    partRows().forEach((p, i) => {
      p.querySelector("output").textContent = `${Math.round((100 * from[i].weight) / total)}%`;
      p.querySelector("button").disabled = from.length <= MIN_PARTS;
    });
    addPart.disabled = from.length >= MAX_PARTS;
    recipeCode.textContent = recipeOf(from);
    recipeLine.textContent = recipeText(from, byId);
  };
  const newPart = (voiceId) => {
    const options = voices.filter(blendable);
    const select = h(
      "select.design-voice",
      { "aria-label": "Natural voice" },
      options.map((v) => h("option", { value: v.id }, `${v.name} — ${v.language}${v.gender ? ` · ${v.gender}` : ""}`)),
    );
    if (voiceId) select.value = voiceId;
    const weight = h("input.design-weight", { type: "range", min: 1, max: 10, step: 1, value: "5", "aria-label": "Weight" });
    const share = h("output.design-share");
    const drop = h("button.link", { type: "button", "aria-label": "Remove this voice" }, "Remove");
    const part = h("div.design-part", select, weight, share, drop);
    select.addEventListener("input", updateDesign);
    weight.addEventListener("input", updateDesign);
    drop.addEventListener("click", () => {
      if (partRows().length > MIN_PARTS) part.remove();
      updateDesign();
    });
    parts.append(part);
    updateDesign();
  };
  addPart.addEventListener("click", () => {
    const used = new Set(design().map((p) => p.voiceId));
    const next = voices.filter(blendable).find((v) => !used.has(v.id) && v.language === byId.get(design()[0]?.voiceId)?.language);
    newPart(next?.id);
  });
  designPreview.addEventListener("click", () =>
    busy(designPreview, async () => {
      designPreview.textContent = "Rendering…";
      try {
        const fetched = await previewUrl({ recipe: recipeOf(design()) });
        if (!alive) return URL.revokeObjectURL(fetched.url);
        keep(fetched.url);
        await play(designPlayer, null, fetched);
        designResult.className = "result-status";
        designResult.textContent = `Preview of ${recipeText(design(), byId)} (${fetched.size.toLocaleString()} bytes, not charged).`;
      } catch (e) {
        designResult.className = "result-status error";
        designResult.textContent = e instanceof ApiError ? e.friendly : String(e);
      }
    }),
  );
  designForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(designSave, async () => {
      const name = designName.value.trim();
      if (!name) {
        designResult.className = "result-status error";
        designResult.textContent = "Give the voice a name.";
        designName.focus();
        return;
      }
      try {
        const voice = await post("/voices", { name, design: { from: design() } });
        designResult.className = "result-status ok";
        designResult.dataset.voiceId = voice.id;
        designResult.textContent = `Saved ${voice.name} (${voice.id}): ${recipeText(voice.recipe, byId)}.`;
        highlight = voice.id;
        designName.value = "";
        await reload({ show: voice });
      } catch (e) {
        designResult.className = "result-status error";
        designResult.textContent = e instanceof ApiError ? e.friendly : String(e);
      }
    });
  });

  // ------------------------------------------------------------ clone
  const setClone = (message, state, kind = "") => {
    cloneStatus.className = `result-status ${kind}`;
    cloneStatus.dataset.status = state;
    cloneStatus.textContent = message;
  };
  const describeEngine = () => {
    const chosen = cloneEngine.value || defaultEngine(cloneLanguage.value);
    engineHint.textContent =
      chosen === "kokoro"
        ? "Kokoro: a natural voice, the blend of Kokoro voices nearest the speaker; it takes a few minutes, and says how similar it came out."
        : "espeak-ng: follows the speaker's pitch, range and speaking rate (not their timbre); ready at once.";
  };
  cloneLanguage.addEventListener("input", describeEngine);
  cloneEngine.addEventListener("input", describeEngine);

  const follow = async (voice) => {
    const started = Date.now();
    let v = voice;
    cloneProgress.hidden = false;
    while (alive && v.status === "processing" && Date.now() - started < MAX_CLONE_WAIT_MS) {
      setClone(`Cloning ${v.name}… ${Math.round((Date.now() - started) / 1000)} s`, "processing");
      await sleep(POLL_MS);
      // A 429 or 503 while polling is waited out, not shown.
      v = await withRetry(() => get(`/voices/${encodeURIComponent(voice.id)}`));
    }
    cloneProgress.hidden = true;
    return v;
  };
  const showClone = (v) => {
    cloneStatus.dataset.voiceId = v.id;
    const facts = [h("dt", "Voice"), h("dd", h("code", v.id)), h("dt", "Engine"), h("dd", { id: "clone-engine-used" }, v.engine || "—")];
    if (v.status === "ready") {
      const similar = typeof v.similarity === "number";
      facts.push(
        h("dt", "Similarity"),
        h(
          "dd",
          { id: "clone-similarity" },
          similar
            ? `${v.similarity.toFixed(3)} (cosine of the speaker encoder between the samples and the voice; 1 is the same speaker)`
            : "not measured: an espeak-ng clone follows pitch, range and rate, not timbre",
        ),
      );
      setClone(`${v.name} is ready${similar ? `: similarity ${v.similarity.toFixed(2)}` : ""}.`, "ready", "ok");
    } else if (v.status === "failed") {
      const reason = v.error && (v.error.message || v.error.code);
      setClone(`Cloning ${v.name} failed${reason ? `: ${reason}` : ""}.`, "failed", "error");
    } else {
      setClone(`${v.name} is still ${v.status}; it shows in the list when ready.`, v.status || "processing", "error");
    }
    mount(cloneFacts, facts);
  };
  cloneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(cloneSubmit, async () => {
      const files = [...(cloneSamples.files || [])];
      const name = cloneName.value.trim();
      if (!name) return setClone("Give the voice a name.", "invalid", "error");
      if (!files.length || files.length > MAX_SAMPLES) {
        return setClone(`Choose 1 to ${MAX_SAMPLES} WAV files.`, "invalid", "error");
      }
      const form = new FormData();
      form.append("name", name);
      form.append("language", cloneLanguage.value);
      if (cloneGender.value) form.append("gender", cloneGender.value);
      if (cloneDescription.value.trim()) form.append("description", cloneDescription.value.trim());
      if (cloneEngine.value && (await takesEngine())) form.append("engine", cloneEngine.value);
      for (const f of files) form.append("samples", f, f.name);
      cloneFacts.replaceChildren();
      cloneProgress.hidden = false;
      setClone(`Uploading ${files.length} sample${files.length > 1 ? "s" : ""}…`, "uploading");
      try {
        const { data: voice } = await postForm("/voices", form);
        const done = voice.status === "processing" ? await follow(voice) : voice;
        if (!alive) return;
        showClone(done);
        if (done.status === "ready") {
          cloneName.value = "";
          cloneDescription.value = "";
          cloneSamples.value = "";
        }
        highlight = done.id;
        await reload({ show: done });
      } catch (e) {
        setClone(e instanceof ApiError ? e.friendly : String(e), "error", "error");
      } finally {
        cloneProgress.hidden = true;
      }
    });
  });

  // ------------------------------------------------------------ load
  async function reload({ show } = {}) {
    resetVoices();
    voices = naturalFirst(await loadVoices());
    byId = new Map(voices.map((v) => [v.id, v]));
    if (show) {
      // Show the new voice: its type, no other filter.
      for (const el of [language, accent, gender, engine]) el.value = "";
      search.value = "";
      type.value = show.type || "";
    }
    fill();
  }

  try {
    voices = naturalFirst(await loadVoices());
    byId = new Map(voices.map((v) => [v.id, v]));
    const langs = languages(voices);
    mount(language, h("option", { value: "" }, "All languages"), langs.map((l) => h("option", { value: l }, l)));
    const accents = [...new Set(voices.map((v) => v.accent).filter(Boolean))].sort();
    mount(accent, h("option", { value: "" }, "Any accent"), accents.map((a) => h("option", { value: a.toLowerCase() }, a)));
    mount(cloneLanguage, langs.map((l) => h("option", { value: l }, l)));
    cloneLanguage.value = langs.includes("en-US") ? "en-US" : langs[0] || "";
    fill();
    const english = voices.filter((v) => blendable(v) && v.language === "en-US");
    newPart(english[0]?.id);
    newPart(english[1]?.id);
  } catch (e) {
    mount(list, empty("The voices could not be loaded."));
    showError(e, "Loading voices");
  }

  // The engine choice, as far as this server takes one.
  if (await takesEngine()) {
    mount(
      cloneEngine,
      h("option", { value: "" }, "Automatic (Kokoro for English, espeak-ng otherwise)"),
      h("option", { value: "kokoro" }, "Kokoro (natural)"),
      h("option", { value: "espeak-ng" }, "espeak-ng"),
    );
  } else {
    mount(cloneEngine, h("option", { value: "espeak-ng" }, "espeak-ng"));
    cloneEngine.dataset.only = "espeak-ng";
  }
  describeEngine();
  if (cloneEngine.dataset.only) engineHint.textContent += " This server clones onto espeak-ng only.";

  return () => {
    alive = false;
    player.pause();
    designPlayer.pause();
    for (const url of blobs) URL.revokeObjectURL(url);
  };
}
