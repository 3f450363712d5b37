#!/usr/bin/env bash
# Regenerates the demo WAVs (16 kHz mono 16-bit, silence around the speech) with espeak-ng.
# The conversion uses the daemon's own decoder and resampler, so no sox is needed.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../.venv/bin/python}
command -v espeak-ng >/dev/null || { echo "make_samples.sh: espeak-ng not installed (apt-get install espeak-ng)" >&2; exit 2; }

make_sample() {  # name, lead silence (s), trail silence (s), text
    local name=$1 lead=$2 trail=$3 text=$4 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v en-us -s 150 -w "$tmp" "$text"
    "$PY" - "$tmp" "$name.wav" "$lead" "$trail" <<'PYEOF'
import sys, wave
from pathlib import Path
import numpy as np
from assistant.audio import decode_wav, to_pipeline_audio

source, target, lead_s, trail_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
decoded = decode_wav(Path(source).read_bytes())
speech = to_pipeline_audio(decoded.samples, decoded.sample_rate)
voiced = np.flatnonzero(np.abs(speech) > 300)  # drop espeak's own silence so ours is exact
speech = speech[voiced[0] : voiced[-1] + 1]
audio = np.concatenate([np.zeros(int(lead_s * 16000), np.int16), speech, np.zeros(int(trail_s * 16000), np.int16)])
with wave.open(target, "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(16000)
    out.writeframes(audio.astype("<i2").tobytes())
PYEOF
    rm -f "$tmp"
    echo "$name.wav"
}

make_sample kitchen_light 0.6 1.0 "hey jarvis, turn on the kitchen light"
make_sample timer         0.5 0.9 "hey jarvis, set a timer for five minutes"
make_sample call_contact  0.7 0.9 "hey jarvis, call mom"
make_sample weather       0.5 1.0 "hey jarvis, what's the weather tomorrow"
