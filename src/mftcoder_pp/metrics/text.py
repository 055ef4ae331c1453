"""Text-similarity metrics for generated code: exact match, corpus BLEU and CodeBLEU.

Every score here is a float in [0, 1] (sacrebleu's 0-100 BLEU is divided by 100).
Each function takes one prediction and one reference string per example, in the same
order; a length mismatch, an empty corpus or a bare string in place of a list raises
ValueError. See docs/metrics.md for the exact rules and the quirks of each metric.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Sequence

from ..languages import LANGUAGES

__all__ = ["normalise_whitespace", "exact_match", "bleu", "codebleu", "CODEBLEU_LANGUAGES"]

#: Our language names -> the names the ``codebleu`` package (0.7.0) expects.
CODEBLEU_LANGUAGES: dict[str, str] = {lang.name: lang.codebleu for lang in LANGUAGES.values()}

_INDENT = re.compile(r"[ \t]*")
_BLANKS = re.compile(r"[ \t]+")


def _check_pair(predictions: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    """Validate a predictions/references pair and return them as lists."""
    for name, value in (("predictions", predictions), ("references", references)):
        if isinstance(value, str):
            raise ValueError(f"{name} must be a sequence of strings, not a single string")
    preds, refs = list(predictions), list(references)
    if len(preds) != len(refs):
        raise ValueError(f"predictions and references differ in length: {len(preds)} != {len(refs)}")
    if not preds:
        raise ValueError("predictions and references are empty: the metric is undefined")
    for name, items in (("predictions", preds), ("references", refs)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise ValueError(f"{name}[{i}] must be a string, got {type(item).__name__}")
    return preds, refs


def normalise_whitespace(code: str) -> str:
    """Canonical whitespace form of ``code``, for exact-match comparison.

    The rule, in order:
      1. split into lines with ``str.splitlines()`` (so \\n, \\r\\n and \\r all end a line);
      2. strip each line's trailing whitespace, then drop lines that are left empty;
      3. remove the indentation common to all remaining lines (``textwrap.dedent``),
         so relative indentation - meaningful in Python - survives;
      4. in each line, keep the leading indentation as is and collapse every run of
         spaces/tabs after it to a single space;
      5. join the lines with "\\n" (no trailing newline).
    """
    lines = [line.rstrip() for line in code.splitlines()]
    text = textwrap.dedent("\n".join(line for line in lines if line))
    out = []
    for line in text.split("\n"):
        indent = _INDENT.match(line).group()  # type: ignore[union-attr]
        out.append(indent + _BLANKS.sub(" ", line[len(indent):]))
    return "\n".join(out)


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference after ``normalise_whitespace``."""
    preds, refs = _check_pair(predictions, references)
    hits = sum(normalise_whitespace(p) == normalise_whitespace(r) for p, r in zip(preds, refs))
    return hits / len(preds)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU in [0, 1]: ``sacrebleu.corpus_bleu(...).score / 100``.

    sacrebleu defaults throughout: tokenizer '13a' (splits punctuation such as
    ``( ) : + ,`` from identifiers; newlines and indentation are ignored), 'exp'
    smoothing, case-sensitive, one reference per prediction. Float noise above 1 is clipped.
    """
    import sacrebleu

    preds, refs = _check_pair(predictions, references)
    score = sacrebleu.corpus_bleu(preds, [refs], tokenize="13a").score / 100.0
    return min(1.0, max(0.0, score))  # sacrebleu can give 100.00000000000004


@contextlib.contextmanager
def _parse_each_text_once():
    """Within one `calc_codebleu` call, strip comments from and extract the data flow of each distinct
    text once. The package does both for every (prediction, reference) pair, and an evaluation repeats
    each reference for every sample of its task (10 or more times): this saves ~40% of CodeBLEU's time.
    Both functions are pure (their output depends only on the text, the language and, through set
    order, the hash seed of this process), so the scores are exactly the package's
    (tests/test_metrics.py compares them)."""
    from codebleu import dataflow_match, syntax_match

    def once(fn, key):
        memo: dict = {}

        def wrapper(*args):
            k = key(*args)
            if k not in memo:
                memo[k] = fn(*args)  # an exception is not stored: the next call raises it again
            return memo[k]
        return wrapper

    saved = [(dataflow_match, "get_data_flow"), (dataflow_match, "remove_comments_and_docstrings"),
             (syntax_match, "remove_comments_and_docstrings")]
    originals = [getattr(m, name) for m, name in saved]
    strip = once(originals[1], lambda source, lang: (source, lang))
    # get_data_flow(code, parser): parser is [tree-sitter parser, the language's DFG function].
    dataflow_match.get_data_flow = once(originals[0], lambda code, parser: (code, parser[1]))
    dataflow_match.remove_comments_and_docstrings = syntax_match.remove_comments_and_docstrings = strip
    try:
        yield
    finally:
        for (module, name), original in zip(saved, originals):
            setattr(module, name, original)


def _dataflow_defined(references: list[str], lang: str) -> bool:
    """True when the package extracts at least one data-flow edge from some reference.

    Matching the references against themselves scores 1 when any edge exists and the
    package's "no data-flow" fallback of 0 otherwise.
    """
    from codebleu.dataflow_match import corpus_dataflow_match

    refs = [r.strip() for r in references]
    return corpus_dataflow_match([[r] for r in refs], refs, lang) > 0


def codebleu(predictions: Sequence[str], references: Sequence[str], language: str) -> dict[str, float | bool]:
    """CodeBLEU (Ren et al. 2020) via the ``codebleu`` package, default weights (0.25 each).

    Returns the package's numbers unchanged under its own keys - ``codebleu`` (the total),
    ``ngram_match_score``, ``weighted_ngram_match_score``, ``syntax_match_score``,
    ``dataflow_match_score`` - plus two honesty flags:

    * ``dataflow_defined``: False when no reference in the corpus has any data flow; the
      package then reports a dataflow score of 0 that means "undefined".
    * ``dataflow_substituted``: True when the package's total used 1 in place of a 0
      dataflow score (it does ``dataflow or 1``) - both when dataflow is undefined and
      when it is a genuine zero match.

    ``language`` is one of ``CODEBLEU_LANGUAGES``; anything else raises ValueError.
    """
    if language not in CODEBLEU_LANGUAGES:
        raise ValueError(
            f"unsupported CodeBLEU language {language!r}; supported: {', '.join(sorted(CODEBLEU_LANGUAGES))}"
        )
    preds, refs = _check_pair(predictions, references)
    from codebleu import calc_codebleu

    lang = CODEBLEU_LANGUAGES[language]
    with _parse_each_text_once():
        raw = calc_codebleu(refs, preds, lang)
    result: dict[str, float | bool] = {key: float(value) for key, value in raw.items()}
    dataflow = result["dataflow_match_score"]
    result["dataflow_defined"] = dataflow > 0 or _dataflow_defined(refs, lang)
    result["dataflow_substituted"] = dataflow == 0
    return result
