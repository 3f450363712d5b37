"""Thresholds → measured error rates (a DET curve), and the sensitivity ladder stored with a model.

Sensitivity is a false-accept budget on a log scale: 0.5 asks for at most 0.5 false accepts per
hour, each 0.25 step multiplies or divides the budget by four (0 → 0.03/h, 1 → 8/h). Each
sensitivity gets the lowest threshold whose measured false accepts (and those of every higher
threshold) stay within its budget, so the setting means the same thing for every model. Where
the negative audio is too short to measure a budget (below one false accept in all of it), the
point needs zero false accepts and says so through ``false_accepts_per_hour == 0``.

>>> hits = [np.array([0.9, 0.2]), np.array([0.4])]  # two positives' scores where firing counts
>>> stream = np.array([0.0, 0.95, 0.0, 0.6, 0.0], np.float32)  # one hour of negatives, say
>>> curve = det_curve(hits, [stream], hours=1.0, refractory_frames=0, thresholds=np.array([0.5, 0.99]))
>>> [(p.threshold, p.false_reject_rate, p.false_accepts_per_hour) for p in curve]
[(0.5, 0.5, 2.0), (0.99, 1.0, 0.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from assistant.wake.model_config import OperatingPoint
from assistant.wake.trigger import count_detections

FloatArray = npt.NDArray[np.float32]
SENSITIVITIES = tuple(round(0.1 * i, 1) for i in range(11))


def fa_budget_per_hour(sensitivity: float) -> float:
    return float(0.5 * 4 ** ((sensitivity - 0.5) / 0.25))


def threshold_grid() -> FloatArray:
    """Thresholds to sweep: even steps, then ever closer to 1 (small models saturate there)."""
    fine = 1.0 - np.logspace(-1, -6, 60)
    return np.unique(np.round(np.concatenate([np.linspace(0.02, 0.9, 45), fine]), 7)).astype(np.float32)


@dataclass(frozen=True)
class DetPoint:
    threshold: float
    false_reject_rate: float
    false_accepts_per_hour: float
    false_accepts: int


def det_curve(
    positive_windows: Sequence[FloatArray],
    negative_tracks: Sequence[FloatArray],
    *,
    hours: float,
    refractory_frames: int,
    thresholds: FloatArray | None = None,
) -> list[DetPoint]:
    """``positive_windows``: each positive's scores over the frames where firing counts as a hit;
    ``negative_tracks``: per-frame scores of negative streams totalling ``hours``."""
    grid = threshold_grid() if thresholds is None else thresholds
    peaks = np.array([float(w.max()) if len(w) else 0.0 for w in positive_windows])
    points = []
    for threshold in grid:
        misses = float(np.mean(peaks < threshold)) if len(peaks) else 1.0
        accepts = sum(
            count_detections(track, float(threshold), refractory_frames) for track in negative_tracks
        )
        points.append(DetPoint(float(threshold), misses, accepts / hours if hours > 0 else 0.0, accepts))
    return points


def operating_points(curve: Sequence[DetPoint]) -> list[OperatingPoint]:
    """One point per sensitivity in :data:`SENSITIVITIES` (see the module docstring)."""
    ordered = sorted(curve, key=lambda p: p.threshold)
    # worst false accepts at this threshold or any higher one: makes the choice monotone
    envelope = np.maximum.accumulate([p.false_accepts_per_hour for p in reversed(ordered)])[::-1]
    points = []
    for sensitivity in SENSITIVITIES:
        budget = fa_budget_per_hour(sensitivity)
        within = [i for i in range(len(ordered)) if envelope[i] <= budget]
        chosen = ordered[within[0]] if within else ordered[-1]
        points.append(
            OperatingPoint(
                sensitivity=sensitivity,
                threshold=round(chosen.threshold, 7),
                false_reject_rate=round(chosen.false_reject_rate, 4),
                false_accepts_per_hour=round(chosen.false_accepts_per_hour, 3),
            )
        )
    return points
