# One entry point per job. Everything runs from the project's virtual environment.
PYTHON_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CORPUS ?= data/corpus
# what the shipped recognizer was trained on last (make data-large; it began on data-medium), and its total
# budget in minutes (72 + 48 on data-medium, then 65 resumed on data-large: over the issue's 120, see MODEL_CARD)
TRAIN_CORPUS ?= data/corpus-large
TRAIN_MINUTES ?= 185
JOBS ?= 2
TRAIN_DEVICE ?= auto
WAKE ?= hey jarvis

.PHONY: install install-bench install-train install-service demo run test test-all lint typecheck bench eval \
        data data-small data-medium data-large voices train export eval-biasing eval-latency eval-latency-tune eval-wake eval-dispatch \
        eval-compression compress compress-export eval-hardware train-wake train-edge-nlu eval-edge-nlu schema clean model-card resume \
        lm lm-sweep pack-corpus

$(VENV)/bin/activate:
	$(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

## install: runtime + dev tools + training extra (CPU torch) into .venv
install: $(VENV)/bin/activate
	$(PIP) install -q -e ".[dev,train]"
	$(PIP) install -q --no-deps "resemblyzer==0.1.4"

## install-bench: the peers make eval and make eval-wake compare against (pocketsphinx, faster-whisper and its
## bundled model); without them their rows say "not installed"
install-bench: install
	$(PIP) install -q -e ".[bench]"

## demo: replay the bundled sample WAVs through the daemon and print events as JSON lines
demo:
	$(VENV)/bin/assistant replay samples/*.wav --json

## run: the daemon on the default microphone
run:
	$(VENV)/bin/assistant run

## test: the default test run (hermetic: own broker per test, tiny models built in the tests)
test:
	$(PY) -m pytest -p no:cacheprovider

lint:
	$(VENV)/bin/ruff check assistant firmware_sim models tests
	$(VENV)/bin/ruff format --check assistant firmware_sim models tests

typecheck:
	$(VENV)/bin/mypy

schema:
	$(PY) -m assistant.events_schema docs/events.schema.json

install-service:
	sudo install -m 0644 systemd/*.service /etc/systemd/system/
	sudo systemctl daemon-reload

voices:
	$(PY) -m models.corpus.fetch_voices

## DATA_MINUTES=N time-boxes a build (it stops, writes its manifests, and the same command resumes it);
## VOICE_SELECTION is the committed generated-voice selection the Kokoro profiles start from (skips ~45 CPU min)
DATA_MINUTES ?=
VOICE_SELECTION ?= docs/results/kokoro-generated-voices.json
## data: the full synthetic corpus into $(CORPUS) (resumable; skips finished shards)
BUILD_ARGS = --jobs $(JOBS) --voice-selection $(VOICE_SELECTION) $(if $(DATA_MINUTES),--max-minutes $(DATA_MINUTES),)
data: voices
	$(PY) -m models.corpus.build --out $(CORPUS) --profile full $(BUILD_ARGS)

data-small: voices
	$(PY) -m models.corpus.build --out data/corpus-small --profile small $(BUILD_ARGS)

data-medium: voices
	$(PY) -m models.corpus.build --out data/corpus-medium --profile medium $(BUILD_ARGS)

data-large: voices
	$(PY) -m models.corpus.build --out data/corpus-large --profile large $(BUILD_ARGS)

## train / export the recognizer (resumes from checkpoints/)
## (TRAIN_DEVICE=cuda on a machine with a GPU; the default auto takes one when it is visible)
train:
	$(PY) -m models.rnnt.train --corpus $(TRAIN_CORPUS) --max-minutes $(TRAIN_MINUTES) --out checkpoints/rnnt \
		--device $(TRAIN_DEVICE)

## pack-corpus: $(TRAIN_CORPUS) as Opus parts small enough to copy to a GPU machine (models/corpus/pack.py)
pack-corpus:
	$(PY) -m models.corpus.pack --corpus $(TRAIN_CORPUS) --out data/packed/$(notdir $(TRAIN_CORPUS)) --jobs $(JOBS)

export:
	$(PY) -m models.rnnt.export --checkpoint checkpoints/rnnt/last.pt --out models/asr
	$(PY) -m models.rnnt.slim --checkpoint checkpoints/rnnt/last.pt --out models/checkpoints/rnnt-last.pt

## lm: the command-domain n-gram LM of models/asr (its own tokenizer; training names + $(TRAIN_CORPUS)/train.jsonl)
## → models/asr/lm.npz, fused in the beam search ([asr] lm_weight). Run after make export (export does not build it).
LM_ARGS ?=
lm:
	$(PY) -m models.lm.build --model-dir models/asr \
		$(if $(wildcard $(TRAIN_CORPUS)/train.jsonl),--corpus $(TRAIN_CORPUS),) $(LM_ARGS)

## lm-sweep: dev WER with the LM off and at a few weights → docs/results/lm_sweep.{json,md} (SWEEP_ARGS="--limit 50 ...")
SWEEP_ARGS ?=
lm-sweep:
	$(PY) -m models.lm.sweep --model-dir models/asr --corpus $(if $(wildcard $(CORPUS)/dev.jsonl),$(CORPUS),$(TRAIN_CORPUS)) $(SWEEP_ARGS)

## resume: continue training the shipped recognizer on a fresh machine from its committed checkpoint
## (TRAIN_MINUTES is the total budget, the minutes already spent included: raise it)
resume:
	$(PY) -m models.rnnt.slim --restore checkpoints/rnnt
	$(MAKE) --no-print-directory train

## eval: WER per dev condition (float, int8) of models/asr, and the peers (pocketsphinx, Whisper tiny.en; the bench
## extra) on the same clips in the same run → docs/results/asr.{json,md} (EVAL_ARGS="--limit 20": a quick run)
EVAL_ARGS ?=
eval:
	$(PY) -m models.rnnt.evaluate --corpus $(CORPUS) --out docs/results/asr --peers $(EVAL_ARGS)
	$(MAKE) --no-print-directory model-card

## model-card: models/asr/MODEL_CARD.md generated from config.json, the ONNX files, docs/results/{asr,bench}.json,
## the training log and the corpus build report (the run's own, else their committed copies in docs/results/); missing →
## "not measured"
CARD_LOG = $(firstword $(wildcard checkpoints/rnnt/log.jsonl) docs/results/rnnt-train-log.jsonl)
CARD_CORPUS_REPORT = $(firstword $(wildcard $(TRAIN_CORPUS)/build_report.json) \
	docs/results/$(notdir $(TRAIN_CORPUS))-build.json)
model-card:
	$(PY) -m models.rnnt.model_card --model-dir models/asr --results docs/results/asr.json --bench docs/results/bench.json \
		--train-log $(CARD_LOG) --corpus-report $(CARD_CORPUS_REPORT)

## eval-dispatch: routing on a real broker (cloud stub, edge service when present, faults) → docs/results/dispatch.{json,md}
eval-dispatch:
	$(PY) -m models.eval.dispatch --out docs/results

## train-edge-nlu: the edge processor's understanding network (intent + slot tagger, 60 % sparse, int8)
## → models/nlu/edge.img + edge.json (a few CPU minutes; run it with nice)
train-edge-nlu:
	$(PY) -m models.nlu_edge.train --out models/nlu/edge.img

## eval-edge-nlu: edge network vs the rule NLU on held-out dev sentences and names → docs/results/edge_nlu.{json,md}
eval-edge-nlu:
	$(PY) -m models.nlu_edge.evaluate --image models/nlu/edge.img --out docs/results

## eval-biasing: name accuracy with/without biasing, WER without names, ablations, speed → docs/results/biasing.{json,md}
## (the recognizer in models/asr; BIASING_ARGS=--tiny proves the run without one)
eval-biasing:
	$(PY) -m models.eval.biasing --corpus $(if $(wildcard $(CORPUS)/dev.jsonl),$(CORPUS),data/corpus-small) \
		--out docs/results $(BIASING_ARGS)

## train-wake: a wake model for $(WAKE) from synthetic speech → models/wake/<id> (make train-wake WAKE="hey computer")
## (the corpus build's train utterances join the negatives when it exists; WAKE_ARGS="--report F.json" etc.)
WAKE_PROFILE ?= full
WAKE_CORPUS ?= data/corpus-medium
train-wake: voices
	$(PY) -m models.wakeword.train --phrase "$(WAKE)" --profile $(WAKE_PROFILE) --jobs $(JOBS) \
		$(if $(wildcard $(WAKE_CORPUS)/train.jsonl),--corpus $(WAKE_CORPUS) --corpus-negatives 6000) $(WAKE_ARGS)

## eval-wake: false rejects (reserved voices, clean + 10 dB), false accepts/h (3 h streams), dev-real, CPU, DET, pocketsphinx
## (the pocketsphinx peer hears the positives and the first 0.25 h of the streams: it is the slow part)
WAKE_EVAL_ARGS ?= --card --peer-hours 0.25 --unique-sentences 200
eval-wake:
	$(PY) -m models.wakeword.evaluate --phrase "$(WAKE)" --out docs/results $(WAKE_EVAL_ARGS)

## eval-latency: end of speech → intent, final only vs speculative + final, on dev streams with pauses → docs/results/latency.{json,md}
eval-latency:
	$(PY) -m models.eval.latency --out docs/results

## eval-latency-tune: the [endpoint] sweep on dev streams disjoint from eval-latency's → docs/results/latency_tune.{json,md}
eval-latency-tune:
	$(PY) -m models.eval.latency_tune --out docs/results

## eval-compression: float vs PTQ / fake-quant / regularised QAT (8, 6, 4 bits), sparsity 50-90 %, small-dense,
## sizes, onnxruntime int8 forms, firmware_sim → docs/results/compression.{json,md} (resumable; docs/compression.md)
## (COMPRESS_ARGS="--smoke --out /tmp/smoke": the tiny fixture in ~30 s; COMPRESS_ARGS="--only reg-uniform-b8": a subset)
COMPRESS_INIT ?= checkpoints/rnnt/last.pt
COMPRESS_MINUTES ?= 15
COMPRESS_ARGS ?=
eval-compression:
	$(PY) -m models.compress.evaluate --init $(COMPRESS_INIT) --corpus $(CORPUS) --minutes $(COMPRESS_MINUTES) \
		--out docs/results $(COMPRESS_ARGS)

## compress: one recipe → checkpoints/compress/<name>/final.pt (make compress METHOD=reg-uniform BITS=8 SPARSITY=0.7)
## compress-export: that checkpoint → ONNX (dynamic, qdq, qoperator int8) + firmware_sim image (CHECKPOINT=..., OUT=...)
METHOD ?= reg-uniform
BITS ?= 8
SPARSITY ?= 0
compress:
	$(PY) -m models.compress.finetune --init $(COMPRESS_INIT) --corpus $(CORPUS) --method $(METHOD) --bits $(BITS) \
		--sparsity $(SPARSITY) --max-minutes $(COMPRESS_MINUTES)

compress-export:
	$(PY) -m models.compress.export --checkpoint $(CHECKPOINT) --out $(OUT) --corpus $(CORPUS)

## eval-hardware: the shipped encoder on firmware_sim, dense vs magnitude-pruned (bit-exact vs the int8 reference,
## DRAM, skipped MACs, cycles per s of audio, image size, int8 vs float) and in onnxruntime's int8 forms
## → docs/results/hardware.{json,md}, images in checkpoints/compress/hardware/ (~20 min on 2 busy cores; use nice)
HARDWARE_CHECKPOINT ?= models/checkpoints/rnnt-last.pt
HARDWARE_CORPUS ?= $(TRAIN_CORPUS)
HARDWARE_ARGS ?= --sparsity 0.7 0.9
eval-hardware:
	$(PY) -m models.compress.hardware --checkpoint $(HARDWARE_CHECKPOINT) --corpus $(HARDWARE_CORPUS) \
		--out docs/results $(HARDWARE_ARGS)

## bench: RTF of the daemon's recognizer path on one thread and peak RSS of `assistant transcribe`, per variant of
## models/asr, on samples/*.wav → docs/results/bench.{json,md}
bench:
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m assistant.bench --out docs/results/bench

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
