"""Vocabulary fusion (paper Eq. 12): V = ∪_l V_l^(freq > τ) ∪ SpecialTokens.

One byte-level BPE is trained per programming language with minimum merge frequency τ; the fused
tokenizer's vocabulary is the union of the per-language vocabularies and its merges the union of
their merges, interleaved by rank (merge r of every language before merge r+1 of any), which keeps
every merge's parts defined before the merge itself. Byte-level: no text is ever out of vocabulary.
(The paper names SentencePiece; byte-level BPE from `tokenizers` is used here because it loads as
a fast tokenizer in transformers with no extra dependency and never needs an unknown token.)
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def _byte_level_bpe(vocab: dict[str, int] | None = None, merges: list[tuple[str, str]] | None = None) -> Tokenizer:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges) if vocab is not None else models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_language_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int) -> tuple[list[str], list[tuple[str, str]]]:
    """(vocabulary, merges in rank order) of a byte-level BPE trained on one language's texts;
    only pairs seen at least `min_frequency` times (τ) are merged."""
    tok = _byte_level_bpe()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    vocab = sorted(model["vocab"], key=model["vocab"].get)
    return vocab, merges  # type: ignore[return-value]


def fuse(per_language: Mapping[str, tuple[list[str], list[tuple[str, str]]]], special_tokens: list[str],
         merges_enabled: bool = True) -> Tokenizer:
    """The fused byte-level BPE tokenizer (Eq. 12). Special tokens get the first ids."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    if merges_enabled:
        longest = max((len(m) for _, m in per_language.values()), default=0)
        for rank in range(longest):
            for lang in sorted(per_language):
                lang_merges = per_language[lang][1]
                if rank < len(lang_merges) and lang_merges[rank] not in seen:
                    seen.add(lang_merges[rank])
                    merges.append(lang_merges[rank])
    vocab: dict[str, int] = {}
    for token in [*special_tokens, *alphabet, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    tok = _byte_level_bpe(vocab, merges)
    tok.add_special_tokens(special_tokens)
    return tok


def vocabulary_overlap(per_language: Mapping[str, tuple[list[str], list[tuple[str, str]]]]) -> dict[str, dict[str, float]]:
    """Jaccard overlap of the learned (merged) tokens between every pair of languages."""
    learned = {lang: {a + b for a, b in merges} for lang, (_, merges) in per_language.items()}
    out: dict[str, dict[str, float]] = {}
    for a in sorted(learned):
        out[a] = {}
        for b in sorted(learned):
            union = learned[a] | learned[b]
            out[a][b] = len(learned[a] & learned[b]) / len(union) if union else 1.0
    return out
