"""Metrics for code-generation evaluation: pass@k (passk) and text similarity (text).

All scores are floats in [0, 1]. The text metrics import sacrebleu / codebleu lazily,
so pass@k needs neither. See docs/metrics.md.
"""

from .passk import estimate_pass_at_k, pass_at_k, pass_at_k_summary, supported_ks
from .text import CODEBLEU_LANGUAGES, bleu, codebleu, exact_match, normalise_whitespace

__all__ = [
    "CODEBLEU_LANGUAGES",
    "bleu",
    "codebleu",
    "estimate_pass_at_k",
    "exact_match",
    "normalise_whitespace",
    "pass_at_k",
    "pass_at_k_summary",
    "supported_ks",
]
