// Every voice of the workspace (presets and cloned), loaded once per key.

import { getAll } from "./api.js";

let cache = null;

export function loadVoices() {
  if (!cache) {
    cache = getAll("/voices", { limit: 100 }).catch((e) => {
      cache = null;
      throw e;
    });
  }
  return cache;
}

export function resetVoices() {
  cache = null;
}

/** Natural voices are the neural ones (Piper, Kokoro): the API's `natural`. */
export function isNatural(voice) {
  return Boolean(voice && (voice.natural ?? (voice.engine === "piper" || voice.engine === "kokoro")));
}

/** Natural voices first, each group in the API's order. */
export function naturalFirst(voices) {
  return [...voices.filter(isNatural), ...voices.filter((v) => !isNatural(v))];
}

export function voiceName(voices, id) {
  const v = voices && voices.find((x) => x.id === id);
  return v ? v.name : id;
}

/** The distinct languages, sorted, for a filter. */
export function languages(voices) {
  return [...new Set(voices.map((v) => v.language))].sort();
}

/** Matches the search text against name, language, gender, description, id, engine, accent and type. */
export function matches(voice, text) {
  const q = text.trim().toLowerCase();
  if (!q) return true;
  const hay = [voice.name, voice.language, voice.gender, voice.description, voice.id, voice.engine, voice.accent, voice.type, isNatural(voice) ? "natural neural" : ""]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return q.split(/\s+/).every((word) => hay.includes(word));
}
