"""Build the recognizer's n-gram language model of the command domain (``models/asr/lm.npz``).

    python -m models.lm.build --model-dir models/asr [--corpus data/corpus-medium] [--order 6]

Text: sentences from the corpus text generator with the *training* names only
(``models.corpus.names.train_names``; the evaluation-only names of EVAL_NAMES.md never enter),
plus the transcripts of ``<corpus>/train.jsonl`` when a corpus is given (rows generated with
evaluation names are skipped). Each sentence is cut into the model's own token ids with its
tokenizer, so the LM fits whatever tokenizer the model ships with; the file records the
tokenizer's piece-list hash and the runtime refuses it for any other.

Estimation: interpolated Kneser–Ney with one absolute discount per order,
``D = n1 / (n1 + 2 n2)``. The highest order uses raw counts, lower orders continuation counts
(how many distinct tokens precede), except n-grams that begin in the sentence-start padding,
which have only one possible left context and keep raw counts (as KenLM does for ``<s>``).
Pruning drops whole highest-order contexts seen fewer than ``--prune`` times: the scorer then
backs off to the shorter context, so every distribution still sums to one.

Pure python and numpy; the runtime scorer is ``assistant/asr/lm.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from assistant.asr.lm import LM_FILE, NgramLm, pieces_hash
from assistant.asr.model_config import AsrModelConfig
from assistant.asr.tokenizer import Tokenizer, TokenizerError

DEFAULT_ORDER = 6
DEFAULT_SENTENCES = 100000
DEFAULT_PRUNE = 2
HELD_OUT_SENTENCES = 500


def count_ngrams(
    sentences: Iterable[Sequence[int]], order: int, boundary: int
) -> list[Counter[tuple[int, ...]]]:
    """Raw counts per order (``[k]``: n-grams of ``k + 1`` tokens), over sentences padded with
    ``order - 1`` boundary ids in front and one after (the sentence end)."""
    counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order)]
    pad = (boundary,) * (order - 1)
    for sentence in sentences:
        padded = (*pad, *sentence, boundary)
        for end in range(order - 1, len(padded)):
            for k in range(order):
                counts[k][padded[end - k : end + 1]] += 1
    return counts


def kneser_ney(
    raw: Sequence[Counter[tuple[int, ...]]], boundary: int, prune: int = 1
) -> tuple[list[dict[tuple[int, ...], tuple[float, dict[int, float]]]], list[float]]:
    """Interpolated Kneser–Ney tables ``[k]{context: (gamma, {token: alpha})}`` and the discounts."""
    order = len(raw)
    kn_counts: list[Counter[tuple[int, ...]]] = []
    for k in range(order):
        if k == order - 1:
            kn_counts.append(raw[k])
            continue
        continuation: Counter[tuple[int, ...]] = Counter(gram[1:] for gram in raw[k + 1])
        modified: Counter[tuple[int, ...]] = Counter()
        for gram, count in raw[k].items():
            # A gram starting in the padding has one possible left context: keep its raw count.
            starts_padded = k > 0 and gram[0] == boundary
            modified[gram] = count if starts_padded else continuation[gram]
        kn_counts.append(modified)

    tables: list[dict[tuple[int, ...], tuple[float, dict[int, float]]]] = []
    discounts: list[float] = []
    for k, counts in enumerate(kn_counts):
        histogram = Counter(counts.values())
        n1, n2 = histogram.get(1, 0), histogram.get(2, 0)
        discount = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
        discount = min(max(discount, 0.05), 0.95)
        discounts.append(discount)
        grouped: dict[tuple[int, ...], dict[int, int]] = defaultdict(dict)
        for gram, count in counts.items():
            if count > 0:
                grouped[gram[:-1]][gram[-1]] = count
        table: dict[tuple[int, ...], tuple[float, dict[int, float]]] = {}
        for context, following in grouped.items():
            total = sum(following.values())
            if k == order - 1 and k > 0 and total < prune:
                continue  # back off to the shorter context instead: still normalised
            alphas = {token: (count - discount) / total for token, count in following.items()}
            table[context] = (discount * len(following) / total, alphas)
        tables.append(table)
    return tables, discounts


def training_texts(sentences: int, seed: int, corpus: Path | None) -> Iterator[str]:
    """Generated sentences with training names, then the corpus's training transcripts."""
    from models.corpus.names import train_names
    from models.corpus.text import generate_sentences

    for sentence in generate_sentences(seed, sentences, train_names()):
        yield sentence.text
    if corpus is not None:
        with (corpus / "train.jsonl").open() as rows:
            for line in rows:
                row = json.loads(line)
                if row.get("names") == "eval" or not str(row.get("text", "")).strip():
                    continue
                yield str(row["text"])


def build_lm(
    tokenizer: Tokenizer,
    texts: Iterable[str],
    *,
    order: int = DEFAULT_ORDER,
    prune: int = DEFAULT_PRUNE,
    provenance: dict[str, object] | None = None,
) -> NgramLm:
    """Tokenise ``texts`` with the recognizer's tokenizer and estimate the LM."""
    if order < 1:
        raise ValueError("order must be at least 1")
    silent = set(tokenizer.silent_ids)
    tokenised = [
        ids for ids in (tokenizer.encode(text) for text in texts) if ids and not silent.intersection(ids)
    ]
    raw = count_ngrams(tokenised, order, tokenizer.blank_id)
    tables, discounts = kneser_ney(raw, tokenizer.blank_id, prune)
    pieces = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
    info: dict[str, object] = {
        **(provenance or {}),
        "sentences_used": len(tokenised),
        "tokens": sum(len(ids) for ids in tokenised),
        "discounts": [round(d, 4) for d in discounts],
        "contexts_per_order": [len(t) for t in tables],
        "method": "interpolated Kneser-Ney",
        "prune_highest_order_contexts_below": prune,
    }
    return NgramLm.from_tables(
        order,
        tokenizer.vocab_size,
        tokenizer.blank_id,
        tables,
        vocab_hash=pieces_hash(pieces, tokenizer.blank_id),
        provenance=info,
    )


def load_model_tokenizer(model_dir: Path) -> Tokenizer:
    """The tokenizer of an exported model dir, with the model's blank id."""
    config = AsrModelConfig.load(model_dir / "config.json")
    return Tokenizer.load(model_dir / config.files.tokenizer, config.blank_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"), help="exported recognizer")
    parser.add_argument("--out", type=Path, default=None, help=f"default: <model-dir>/{LM_FILE}")
    parser.add_argument("--corpus", type=Path, default=None, help="also <corpus>/train.jsonl transcripts")
    parser.add_argument("--order", type=int, default=DEFAULT_ORDER)
    parser.add_argument("--sentences", type=int, default=DEFAULT_SENTENCES, help="generated sentences")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--prune", type=int, default=DEFAULT_PRUNE, help="drop rarer highest-order contexts")
    args = parser.parse_args(argv)
    out = args.out or args.model_dir / LM_FILE
    try:
        tokenizer = load_model_tokenizer(args.model_dir)
    except (OSError, ValueError, TokenizerError) as error:
        print(
            f"error: {args.model_dir}: no usable exported model ({error}); run make export first",
            file=sys.stderr,
        )
        return 2
    if args.corpus is not None and not (args.corpus / "train.jsonl").exists():
        print(f"error: {args.corpus}/train.jsonl not found", file=sys.stderr)
        return 2
    started = time.perf_counter()
    provenance: dict[str, object] = {
        "generated_sentences": args.sentences,
        "seed": args.seed,
        "names": "train_names() only",
        "corpus": str(args.corpus) if args.corpus else None,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lm = build_lm(
        tokenizer,
        training_texts(args.sentences, args.seed, args.corpus),
        order=args.order,
        prune=args.prune,
        provenance=provenance,
    )
    held_out = [tokenizer.encode(t) for t in training_texts(HELD_OUT_SENTENCES, args.seed + 1000, None)]
    lm.provenance["held_out_perplexity"] = round(lm.perplexity(held_out), 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    lm.save(out)
    print(
        f"{out}: order {lm.order}, {lm.context_count} contexts, {out.stat().st_size / 1e6:.2f} MB, "
        f"held-out perplexity per token {lm.provenance['held_out_perplexity']} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
