"""The common-word pronunciation lexicon the sound-alike speller uses (``assistant/asr/common_words.tsv``).

A recognizer trained on the assistant's command text writes the words of that text readily; a name
it has never heard tends to come out as a run of them ("Siobhan" → "shiv on"). The lexicon holds
those words, most frequent first, with their espeak-ng IPA, so the daemon needs no espeak-ng to
use it. Built from the training sentence generator with the *training* names only, so no
evaluation-only name can enter it (a test checks).

    python -m models.corpus.common_words            # rewrites assistant/asr/common_words.tsv
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from assistant.asr.soundalike import COMMON_WORDS_FILE, ENGLISH_VOICE, Pronouncer
from models.corpus.names import train_names
from models.corpus.text import generate_sentences

SENTENCES = 20000
MIN_COUNT = 3


def common_words(sentences: int = SENTENCES, min_count: int = MIN_COUNT, seed: int = 1) -> list[str]:
    """Words of generated training text said at least ``min_count`` times, most frequent first;
    single letters (spelled-out acronyms) left out, except "a" and "i"."""
    counts = Counter(
        word
        for sentence in generate_sentences(seed, sentences, train_names())
        for word in sentence.text.split()
    )
    return [
        word
        for word, count in counts.most_common()
        if count >= min_count and (len(word) > 1 or word in ("a", "i")) and "'" not in word
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=COMMON_WORDS_FILE)
    args = parser.parse_args()
    words = common_words()
    ipa = Pronouncer().ipa(words, ENGLISH_VOICE)
    lines = [f"{word}\t{ipa[word]}" for word in words if word in ipa]
    header = (
        "# word<TAB>espeak-ng en-us IPA, most frequent first; made by python -m models.corpus.common_words\n"
    )
    args.out.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(lines)} words")


if __name__ == "__main__":
    main()
