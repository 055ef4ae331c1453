"""A simple, language-agnostic code tokenizer: identifiers, numbers and single punctuation marks.

Used where only a stable split into lexical units matters (dedup shingles, decontamination
n-grams, the vocabulary-overlap figure, curriculum entropy), never for training.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9_]")


def code_tokens(text: str) -> list[str]:
    """`x1 = foo(a, 2.5)` -> ['x1', '=', 'foo', '(', 'a', ',', '2.5', ')']. Whitespace is dropped,
    so re-indented or re-wrapped code gives the same tokens."""
    return _TOKEN.findall(text)
