"""Wake word: the always-on detector, its model contract, the trigger, the second-stage check.

The daemon builds one with :func:`detector_from_config`; training lives in ``models/wakeword``.
"""

from assistant.wake.detector import WakeDetector, WakeModelError, bundled_model_dir, detector_from_config
from assistant.wake.model_config import OperatingPoint, WakeModelConfig
from assistant.wake.trigger import Trigger, WakeDetection
from assistant.wake.verify import PhraseVerifier

__all__ = [
    "OperatingPoint",
    "PhraseVerifier",
    "Trigger",
    "WakeDetection",
    "WakeDetector",
    "WakeModelConfig",
    "WakeModelError",
    "bundled_model_dir",
    "detector_from_config",
]
