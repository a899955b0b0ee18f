"""The espeak-ng speech engine from pip `espeakng-loader`, driven through ctypes: text and voice in, 16 kHz out.

espeak-ng keeps global state per process, so calls are serialized by a lock. Its output also depends a little on
what it spoke before (pitch flutter phase); `use_private_engine` gives a process a fresh copy of the library, which
`synth.build_corpus` uses to make the same seed give the same audio.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import soxr

from speechllm.errors import DataError

SAMPLE_RATE = 16_000
VOICE_ALIASES = {"en-gb": "en"}  # espeak-ng 1.52 names its British voice "en"

_AUDIO_OUTPUT_SYNCHRONOUS, _CHARS_UTF8 = 2, 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """The process's espeak-ng engine (synchronous mode: the callback collects int16 samples)."""

    def __init__(self, private: bool = False) -> None:
        espeakng_loader = require_espeak()
        self.data_dir = Path(espeakng_loader.get_data_path())
        if private:  # a copy of the library has its own static state, untouched by this process's history
            folder = tempfile.mkdtemp(prefix="espeak-")
            path = shutil.copy(espeakng_loader.get_library_path(), folder)
            self.lib = ctypes.CDLL(path)
            shutil.rmtree(folder)
        else:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        uint, pointer = ctypes.c_uint, ctypes.c_void_p
        synth_args = [ctypes.c_char_p, ctypes.c_size_t, uint, ctypes.c_int, uint, uint, pointer, pointer]
        self.lib.espeak_Synth.argtypes = synth_args
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir.parent).encode(), 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}) with data in {self.data_dir}")
        self.chunks: list[np.ndarray] = []
        self.callback = _CALLBACK(self._collect)  # keep a reference: espeak holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)
        self.variants = {p.name for p in (self.data_dir / "voices" / "!v").iterdir()}

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: int) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        base, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise DataError(
                f"unknown espeak-ng voice variant {variant!r} in {voice!r}; variants are the files "
                f"in {self.data_dir / 'voices' / '!v'}, e.g. m3, f2"
            )
        name = VOICE_ALIASES.get(base, base) + (f"+{variant}" if variant else "")
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise DataError(
                f"unknown espeak-ng voice {voice!r}; use a voice file name under "
                f"{self.data_dir / 'lang'} such as en-us, en, en-gb-x-rp, de"
            )
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self.lib.espeak_ng_SetRandSeed(0)  # breath noise; seeded from the clock at initialization otherwise
        self.chunks = []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


_ENGINE: _Espeak | None = None
_LOCK = threading.Lock()


def synthesize(
    text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50
) -> np.ndarray:
    """Speak `text` with espeak-ng `voice` ("en-us", "de+f4", ...); `rate` in words/minute, `pitch` 0-100.

    Returns float32 mono samples at 16 kHz in [-1, 1].
    """
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        samples = _ENGINE.speak(text, voice, rate, pitch, pitch_range)  # T int16 at 22050 Hz
        source_rate = _ENGINE.sample_rate
    audio = samples.astype(np.float32) / 32768.0
    if audio.size == 0:
        return audio
    return soxr.resample(audio, source_rate, SAMPLE_RATE).astype(np.float32)  # T -> T*16000/22050


def require_espeak() -> ModuleType:
    """The `espeakng_loader` module, or a `DataError` that says how to install it."""
    try:
        import espeakng_loader
    except ImportError:
        raise DataError("speech synthesis needs espeak-ng from pip: pip install espeakng-loader "
                        "(or pip install -e '.[bundled]')") from None
    return espeakng_loader


def use_private_engine() -> None:
    """Give this process a fresh engine with its own copy of the library (the one inherited by fork carries the
    parent's history), so that what it speaks does not depend on what was spoken before."""
    global _ENGINE, _LOCK
    _LOCK = threading.Lock()
    _ENGINE = _Espeak(private=True)
