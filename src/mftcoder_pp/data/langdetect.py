"""Which of the six languages a training example is in, when the source does not say.

Order of evidence: (1) code fences tagged with one of the six languages (the language with the most
fenced code wins); (2) for untagged fences, or text with no fences at all, lexical heuristics
(weighted regexes per language, plus a mention of the language in the instruction) confirmed by a
tree-sitter parse. Fences tagged only with other languages (bash, lua, c, ...) and prose with no
code give None: the caller rejects the example as "unknown language".
"""

from __future__ import annotations

import re

from ..languages import LANGUAGES
from .fences import code_blocks
from .syntax import parses

# Detection order: ties go to the language of lower detect_rank.
_RANKED = sorted(LANGUAGES.values(), key=lambda lang: lang.detect_rank)
HEURISTICS: dict[str, tuple[re.Pattern, ...]] = {
    lang.name: tuple(re.compile(p, re.M) for p in lang.detect_patterns) for lang in _RANKED}
MENTIONS: dict[str, re.Pattern] = {lang.name: re.compile(lang.mention, re.I) for lang in _RANKED}


def scores(code: str, instruction: str = "") -> dict[str, int]:
    """Heuristic hits per language (a mention of the language in the instruction counts one)."""
    out = {lang: sum(1 for p in patterns if p.search(code)) for lang, patterns in HEURISTICS.items()}
    for lang, pattern in MENTIONS.items():
        if instruction and pattern.search(instruction):
            out[lang] += 1
    return out


def guess(code: str, instruction: str = "", min_score: int = 1) -> str | None:
    """The best-scoring language among those whose parse of `code` succeeds; when none parses (a
    fragment), the best score if it reaches min_score + 1; ties go to the lower detect_rank."""
    ranked = sorted(((s, lang) for lang, s in scores(code, instruction).items() if s >= min_score),
                    key=lambda x: -x[0])
    for _, lang in ranked:
        if parses(code, lang):
            return lang
    if ranked and ranked[0][0] >= min_score + 1:
        return ranked[0][1]
    return None


def detect_language(output: str, input: str = "", instruction: str = "") -> str | None:
    """The language of an example, or None when it holds no code in one of the six languages."""
    blocks = code_blocks(output) + code_blocks(input)
    if blocks:
        sizes: dict[str, int] = {}
        for b in blocks:
            if b.language:
                sizes[b.language] = sizes.get(b.language, 0) + len(b.code)
        if sizes:
            return max(sorted(sizes), key=lambda lang: sizes[lang])
        untagged = "\n".join(b.code for b in blocks if not b.tag)
        return guess(untagged, instruction) if untagged.strip() else None
    # No fences: the whole text must look like code in one language and parse as it.
    found = guess(output, instruction, min_score=2)
    if found is None and input.strip():  # a completion whose signature is in the input
        found = guess(input + "\n" + output, instruction, min_score=2)
    return found
