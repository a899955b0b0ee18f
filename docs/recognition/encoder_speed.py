"""Encoder throughput for the feature cache, bfloat16 against float32, on the first N utterances of a manifest
(docs/recognition.md section 17; run it with OMP_NUM_THREADS=1 for one thread):

    python docs/recognition/encoder_speed.py MANIFEST N
"""

import sys
import tempfile
import time

import torch

from speechllm.data.audio import LogMel
from speechllm.data.manifest import read_manifest
from speechllm.model.encoder import AudioEncoder
from speechllm.model.feature_cache import FeatureCache
from speechllm.model.sources import load_whisper_encoder

utterances = read_manifest(sys.argv[1])[: int(sys.argv[2])]
for dtype in (torch.bfloat16, torch.float32):
    encoder = AudioEncoder(load_whisper_encoder("bundled:whisper-base", dtype), "trim")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        FeatureCache(folder, encoder).fill(utterances, LogMel(), batch_size=8)
        seconds = time.perf_counter() - start
    print(f"{dtype}: {len(utterances)} utterances in {seconds:.1f} s, {len(utterances) / seconds:.1f} a second")
