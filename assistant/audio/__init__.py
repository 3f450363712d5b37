"""Audio in: sources that yield numbered 10 ms frames of 16 kHz mono int16 (see ``frames``)."""

from assistant.audio.frames import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame, Framer, to_pipeline_audio
from assistant.audio.resample import StreamingResampler, resample
from assistant.audio.sources import AudioInputError, AudioSource, PcmStdinSource, WavSource
from assistant.audio.wav import DecodedWav, WavFormatError, decode_wav

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioFrame",
    "AudioInputError",
    "AudioSource",
    "DecodedWav",
    "Framer",
    "PcmStdinSource",
    "StreamingResampler",
    "WavFormatError",
    "WavSource",
    "decode_wav",
    "resample",
    "to_pipeline_audio",
]
