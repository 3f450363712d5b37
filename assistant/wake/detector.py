"""The always-on wake detector: log-mel frames and VAD flags in, detections out.

The network is a causal convolution stack with a finite receptive field, run in ONNX with an
explicit state, one call per hop (``hop_frames`` × 10 ms, 20–80 ms). Two things keep it cheap
without ever making it late:

* **VAD gating.** While the VAD hears no speech (and for ``gate_tail_frames`` after the last
  speech frame) the network does not run; the detector only keeps the frames the next output
  could depend on (its receptive field). When speech starts it restarts from a zero state and
  replays those frames first, so every frame it scores sees exactly the inputs an ungated
  detector would have seen: the scores, and so the detections, are the same frames.
* **Muting** (Hermes ``toggleOff``) skips the network altogether; unmuting resumes with the
  same replay, so a phrase that started just before ``toggleOn`` is still caught.

The frame a detection names is the stream frame (counted from ``reset``) whose score fired.

>>> detector = WakeDetector.from_directory(Path("models/wake/hey_jarvis"))  # doctest: +SKIP
>>> detector.accept(log_mel_frames, vad_flags)  # doctest: +SKIP
[WakeDetection(frame_index=412, score=0.97)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.config import WakeConfig
from assistant.frontend import FEATURES
from assistant.wake.model_config import CONFIG_FILE, WakeModelConfig
from assistant.wake.trigger import Trigger, WakeDetection

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

FRAME_MS = 10


class WakeModelError(Exception):
    """The wake model files are missing or do not match this runtime; the message says which."""


def _session(model_path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def bundled_model_dir(wakeword_id: str) -> Path:
    """``models/wake/<wakeword_id>`` next to the ``assistant`` package."""
    return Path(__file__).resolve().parents[2] / "models" / "wake" / wakeword_id


class WakeDetector:
    """Streaming detector over one audio stream; one instance per stream."""

    def __init__(
        self,
        model_path: Path,
        config: WakeModelConfig,
        *,
        sensitivity: float = 0.5,
        threshold: float | None = None,
        refractory_frames: int = 200,
        hop_frames: int = 4,
        vad_gating: bool = True,
        gate_tail_frames: int = 50,
        threads: int = 1,
    ) -> None:
        if not 2 <= hop_frames <= 8 or hop_frames % config.subsampling:
            raise ValueError(
                f"hop_frames must be 2..8 (20–80 ms) and a multiple of {config.subsampling}, got {hop_frames}"
            )
        if config.feature_config != FEATURES:
            raise WakeModelError(
                f"{model_path}: trained on features {config.features}, the front end computes "
                f"{FEATURES.__dict__}; retrain the wake model (make train-wake)"
            )
        try:
            self._session = _session(model_path, threads)
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise WakeModelError(f"{model_path}: cannot load the wake model: {error}") from None
        self.config = config
        self.hop_frames = hop_frames
        self.vad_gating = vad_gating
        self.gate_tail_frames = gate_tail_frames
        self.trigger = Trigger(
            config.threshold_for(sensitivity) if threshold is None else threshold, refractory_frames
        )
        self._history_frames = config.receptive_field_frames - config.subsampling
        self._n_mels = int(config.features["n_mels"])
        self._muted = False
        self.frames_run = 0  # frames the network actually processed, replays included
        self.reset()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_directory(cls, directory: Path, **options: Any) -> WakeDetector:
        """Load ``wake.json`` and the ONNX file it names from ``directory``."""
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise WakeModelError(f"{config_path}: no wake model here (train one: make train-wake)")
        try:
            config = WakeModelConfig.load(config_path)
        except ValueError as error:
            raise WakeModelError(f"{config_path}: not a wake model config: {error}") from None
        model_path = directory / config.files["model"]
        if not model_path.is_file():
            raise WakeModelError(f"{model_path}: missing (the config names it)")
        return cls(model_path, config, **options)

    @property
    def threshold(self) -> float:
        return self.trigger.threshold

    @property
    def wakeword_id(self) -> str:
        return self.config.wakeword_id

    @property
    def phrase(self) -> str:
        """The phrase the model was trained on, as spoken."""
        return self.config.phrase

    # ------------------------------------------------------------------ streaming

    def reset(self) -> None:
        """Forget the stream: frame indices restart at 0."""
        self._state = self._zero_state()
        self._active = False
        self._frames_since_speech = self.gate_tail_frames + 1
        self._history = np.zeros((0, self._n_mels), dtype=np.float32)
        self._pending_frames: list[FloatArray] = []
        self._pending_flags: list[BoolArray] = []
        self._pending_count = 0
        self._next_index = 0
        self.trigger.reset()

    @property
    def muted(self) -> bool:
        return self._muted

    def set_muted(self, muted: bool) -> None:
        """Hermes toggleOff (True) / toggleOn (False); audio keeps flowing through the history."""
        self._muted = muted
        if muted:
            self._active = False

    def accept(
        self, log_mel_frames: FloatArray, vad_speech_flags: BoolArray | None = None
    ) -> list[WakeDetection]:
        """Append frames (``[n, n_mels]``) and their VAD decisions; return detections of whole hops.

        Without VAD flags every frame counts as speech (no gating).
        """
        frames, flags = self._checked(log_mel_frames, vad_speech_flags)
        self._pending_frames.append(frames)
        self._pending_flags.append(flags)
        self._pending_count += len(frames)
        detections: list[WakeDetection] = []
        if self._pending_count < self.hop_frames:
            return detections
        all_frames = np.concatenate(self._pending_frames)
        all_flags = np.concatenate(self._pending_flags)
        usable = len(all_frames) - len(all_frames) % self.hop_frames
        for start in range(0, usable, self.hop_frames):
            chunk = slice(start, start + self.hop_frames)
            first_index = self._next_index
            scores = self._advance(all_frames[chunk], all_flags[chunk])
            if not self._muted:
                detections.extend(self.trigger.update(scores, first_index))
        self._pending_frames = [all_frames[usable:]]
        self._pending_flags = [all_flags[usable:]]
        self._pending_count = len(all_frames) - usable
        return detections

    def score_stream(
        self, log_mel_frames: FloatArray, vad_speech_flags: BoolArray | None = None
    ) -> FloatArray:
        """Per-frame scores of a whole stream from a fresh state, hop by hop as ``accept`` runs them.

        Gated frames, and a last part-step the network cannot take, score 0. Used by evaluation to
        sweep thresholds over one pass.
        """
        self.reset()
        frames, flags = self._checked(log_mel_frames, vad_speech_flags)
        usable = len(frames) - len(frames) % self.config.subsampling
        parts = [
            self._advance(frames[start:stop], flags[start:stop])
            for start in range(0, usable, self.hop_frames)
            for stop in [min(usable, start + self.hop_frames)]
        ]
        parts.append(np.zeros(len(frames) - usable, dtype=np.float32))
        self.reset()
        return np.concatenate(parts)

    # ------------------------------------------------------------------ internals

    def _checked(self, frames: FloatArray, flags: BoolArray | None) -> tuple[FloatArray, BoolArray]:
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != self._n_mels:
            raise ValueError(f"log-mel frames must have shape [n, {self._n_mels}], got {frames.shape}")
        if flags is None:
            return frames, np.ones(len(frames), dtype=np.bool_)
        flags = np.asarray(flags, dtype=np.bool_)
        if flags.shape != (len(frames),):
            raise ValueError(f"need one VAD flag per frame: {len(frames)} frames, flags {flags.shape}")
        return frames, flags

    def _zero_state(self) -> FloatArray:
        return np.zeros((1, self.config.channels, self.config.state_steps), dtype=np.float32)

    def _advance(self, frames: FloatArray, flags: BoolArray) -> FloatArray:
        """Score one chunk (gated or not) and move the stream on by its length."""
        self._next_index += len(frames)
        speech_at = np.flatnonzero(flags)
        if len(speech_at):
            self._frames_since_speech = len(frames) - 1 - int(speech_at[-1])
        else:
            self._frames_since_speech += len(frames)
        wanted = not self._muted and (
            not self.vad_gating or len(speech_at) > 0 or self._frames_since_speech <= self.gate_tail_frames
        )
        scores = np.zeros(len(frames), dtype=np.float32)
        if wanted:
            if not self._active:
                # Restart exactly as an ungated detector would stand here: replay the history.
                self._state = self._zero_state()
                if len(self._history):
                    self._run(self._history)
                self._active = True
            scores = self._run(frames)
        else:
            self._active = False
        self._remember(frames)
        return scores

    def _run(self, frames: FloatArray) -> FloatArray:
        logits, self._state = self._session.run(
            ["logits", "state_out"], {"features": frames[None, :, :], "state": self._state}
        )
        self.frames_run += len(frames)
        per_step = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float32)[0]))
        # every frame of a step gets the step's score: the trigger works in 10 ms frames
        probabilities: FloatArray = np.repeat(per_step, self.config.subsampling).astype(np.float32)
        return probabilities

    def _remember(self, frames: FloatArray) -> None:
        if self._history_frames == 0:
            return
        joined = np.concatenate([self._history, frames])
        self._history = joined[-self._history_frames :]


def detector_from_config(wake: WakeConfig) -> WakeDetector:
    """The detector the ``[wake]`` config section asks for (bundled model unless ``model_path``).

    ``model_path`` may name the directory or its ``wake.json``. Raises ``WakeModelError`` when
    there is no such model.
    """
    if wake.model_path is None:
        directory = bundled_model_dir(wake.wakeword_id)
    else:
        directory = wake.model_path if wake.model_path.is_dir() else wake.model_path.parent
    return WakeDetector.from_directory(
        directory,
        sensitivity=wake.sensitivity,
        refractory_frames=wake.refractory_ms // FRAME_MS,
        hop_frames=wake.hop_ms // FRAME_MS,
        vad_gating=wake.vad_gating,
    )
