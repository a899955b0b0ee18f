"""`speechllm evaluate` with the CTC head's blank log-probability lowered by $BLANK_PENALTY nats at decoding, then
renormalized (a probe, not in the package; docs/recognition.md sections 8 and 14):

    BLANK_PENALTY=1.5 python docs/recognition/blank_penalty_eval.py evaluate --manifest corpus10k/dev300.jsonl \
        --checkpoint speechllm/resources/offline-cpu --predictions p.jsonl model.dtype=float32 decode.num_beams=1
"""

import os
import sys

from speechllm.cli import main
from speechllm.model.speech_llm import SpeechLLM

PENALTY = float(os.environ.get("BLANK_PENALTY", "0"))
_plain = SpeechLLM.ctc_log_probs


def ctc_log_probs(self, audio):
    log_probs = _plain(self, audio)
    if self.training or not PENALTY:
        return log_probs
    log_probs = log_probs.clone()
    log_probs[..., 0] -= PENALTY
    return log_probs.log_softmax(-1)


SpeechLLM.ctc_log_probs = ctc_log_probs

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
