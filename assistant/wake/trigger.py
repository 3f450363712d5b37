"""Per-frame wake scores → detections: a threshold, a refractory window, and re-arming.

One utterance fires once: the trigger fires on the first frame whose score reaches the
threshold, then ignores everything for ``refractory_frames`` frames, and fires again only
after the score has dipped below the threshold (so a long plateau of high scores is one
detection, however long it lasts). The runtime detector and the evaluation both use it, so
the figures measured are the ones the daemon gets.

>>> trigger = Trigger(threshold=0.5, refractory_frames=4)
>>> scores = np.array([0.1, 0.7, 0.9, 0.2, 0.8, 0.1, 0.6], np.float32)
>>> [d.frame_index for d in trigger.update(scores, first_index=10)]  # 14: still refractory
[11, 16]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WakeDetection:
    """The wake phrase ended at (or just before) stream frame ``frame_index``; ``score`` is 0..1."""

    frame_index: int
    score: float


class Trigger:
    def __init__(self, threshold: float, refractory_frames: int) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {threshold}")
        if refractory_frames < 0:
            raise ValueError(f"refractory_frames must be >= 0, got {refractory_frames}")
        self.threshold = threshold
        self.refractory_frames = refractory_frames
        self.reset()

    def reset(self) -> None:
        self._next_allowed = 0
        self._armed = True

    def update(self, scores: npt.NDArray[np.float32], first_index: int) -> list[WakeDetection]:
        """Scores of consecutive frames starting at stream frame ``first_index`` → detections."""
        detections: list[WakeDetection] = []
        above = np.asarray(scores) >= self.threshold
        if not above.any():  # the common case: nothing near the threshold
            self._armed = True
            return detections
        # Work on runs of frames at or above the threshold: hours of scores sweep quickly.
        edges = np.flatnonzero(np.diff(np.concatenate([[False], above, [False]]).astype(np.int8)))
        for start, stop in zip(edges[0::2], edges[1::2], strict=True):
            if start > 0:
                self._armed = True  # a frame below the threshold came first
            if not self._armed:
                continue
            fire_at = max(first_index + int(start), self._next_allowed)
            if fire_at < first_index + int(stop):
                detections.append(WakeDetection(fire_at, float(scores[fire_at - first_index])))
                self._armed = False
                self._next_allowed = fire_at + self.refractory_frames
        if edges[-1] < len(scores):
            self._armed = True
        return detections


def count_detections(scores: npt.NDArray[np.float32], threshold: float, refractory_frames: int) -> int:
    """Detections a fresh trigger makes over a whole score track (evaluation helper)."""
    return len(Trigger(threshold, refractory_frames).update(scores, first_index=0))
