"""The reference for `voiceprod-bench kokoro`: Kokoro's ONNX model run by
onnxruntime from Python, the plain way (kokoro-onnx does the same), on
token ids given by the benchmark. Inference only.

    python kokoro_reference.py KOKORO_DIR PACK IDS.json THREADS

prints {"audio_s": …, "wall_s": …} for one pass over the batches.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

directory, pack, ids_file, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
batches = json.load(open(ids_file))
voice = np.fromfile(f"{directory}/voices/{pack}.bin", dtype=np.float32).reshape(-1, 1, 256)
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(
    f"{directory}/kokoro-v1.0.int8.onnx", options, providers=["CPUExecutionProvider"]
)
# Warm-up, as the engine under test is warm too.
session.run(["audio"], {
    "tokens": np.array([[0, *batches[0], 0]], dtype=np.int64),
    "style": voice[len(batches[0]) - 1],
    "speed": np.ones(1, dtype=np.float32),
})
samples = 0
started = time.perf_counter()
for ids in batches:
    audio = session.run(["audio"], {
        "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
        "style": voice[len(ids) - 1],
        "speed": np.ones(1, dtype=np.float32),
    })[0]
    samples += audio.shape[-1]
wall = time.perf_counter() - started
print(json.dumps({"audio_s": samples / 24000, "wall_s": wall}))
