"""Registry of evaluation benchmarks, by name, and their known-broken tasks."""

from __future__ import annotations

from typing import Callable

from .base import Benchmark, Task
from .humaneval import HumanEval
from .humaneval_x import LANG_CODES, HumanEvalX
from .mbpp import MBPP
from .synthetic import synthetic_benchmarks

REGISTRY: dict[str, Callable[[], Benchmark]] = {
    "humaneval": HumanEval,
    "mbpp": MBPP,
    "mbpp-sanitized": lambda: MBPP(sanitized=True),
}
for _code in LANG_CODES:
    REGISTRY[f"humaneval-x-{_code}"] = (lambda c=_code: HumanEvalX(c))
    REGISTRY[f"humanevalpack-{_code}"] = (lambda c=_code: HumanEvalX(c, pack=True))

# The synthetic multilingual suite: synthetic-<language> (held-out test split) and synthetic-transfer
# (docs/synthetic.md). Generated from a fixed seed when first used.
REGISTRY.update(synthetic_benchmarks())

# Tasks whose canonical solution does not pass the benchmark's own test here, or whose test is
# weaker than it looks. They are evaluated like every other task (never skipped); results and
# summaries flag them. Explanations: docs/evaluation.md.
KNOWN_ISSUES: dict[str, dict[str, str]] = {
    "humaneval-x-js": {
        "JavaScript/112": "canonical solution returns `(z, false)`, a comma expression: the reference fails",
        "JavaScript/155": "canonical solution returns [0,0] for input 0 while the test expects [1,0]",
    },
    "humaneval-x-go": {"Go/95": "canonical solution depends on Go map iteration order: flaky"},
    "humaneval-x-rust": {
        "Rust/32": "the whole test is commented out: any completion that compiles passes",
        "Rust/50": "uses rand <= 0.7 `gen_range(a, b)`; does not compile with rand 0.8",
    },
    "humanevalpack-go": {"Go/95": "canonical solution depends on Go map iteration order: flaky"},
    "humanevalpack-rust": {
        "Rust/32": "test uses rand <= 0.7 `gen_range(a, b)`; does not compile with rand 0.8",
        "Rust/50": "uses rand <= 0.7 `gen_range(a, b)`; does not compile with rand 0.8",
    },
    "humanevalpack-js": {
        "JavaScript/107": "test compares `(a, b)` (comma operator): checks only a scalar",
        "JavaScript/136": "test compares `(a, b)` (comma operator): checks only a scalar",
        "JavaScript/155": "test compares `(a, b)` (comma operator): checks only a scalar",
    },
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


__all__ = ["Benchmark", "Task", "REGISTRY", "KNOWN_ISSUES", "get_benchmark"]
