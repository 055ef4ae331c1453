"""Temperature sampling over tasks (paper Eq. 13) and entropy curriculum ordering (Eq. 14).

Eq. 13: P(t_i) ∝ |D_i|^(1/T). With the paper's printed T = 0.7 the exponent is 1.43, which
*sharpens* imbalance — the opposite of its stated purpose. The default here is T = 1/0.7 (exponent
0.7, the usual multilingual setting); T stays a parameter so the printed value can be reproduced.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping, Sequence

DEFAULT_TEMPERATURE = 1 / 0.7


def temperature_probabilities(sizes: Mapping[str, int], temperature: float = DEFAULT_TEMPERATURE) -> dict[str, float]:
    """P(t) = |D_t|^(1/T) / sum_j |D_j|^(1/T). T = 1 is proportional, T -> inf is uniform."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not sizes:
        raise ValueError("no tasks to sample from")
    for task, n in sizes.items():
        if n < 0:
            raise ValueError(f"task {task!r} has a negative size {n}")
    if sum(sizes.values()) == 0:
        raise ValueError("every task is empty")
    # Work in log space: |D|^(1/T) overflows floats for large datasets and small T.
    logs = {t: math.log(n) / temperature for t, n in sizes.items() if n > 0}
    top = max(logs.values())
    weights = {t: math.exp(v - top) for t, v in logs.items()}
    total = sum(weights.values())
    return {t: weights.get(t, 0.0) / total for t in sizes}


def token_entropy(tokens: Sequence[str]) -> float:
    """H(x) = -sum_t p_t log p_t over the token distribution of one example (nats)."""
    if not tokens:
        return 0.0
    counts = Counter(tokens)
    n = len(tokens)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def curriculum_order(examples_by_task: Mapping[str, Iterable[Sequence[str]]]) -> list[tuple[str, float]]:
    """Tasks ordered by mean token entropy of their examples, low to high (Eq. 14): C_i = E[H(x)].
    Ties are broken by task name, so the order is deterministic."""
    scores = {}
    for task, examples in examples_by_task.items():
        values = [token_entropy(x) for x in examples]
        if not values:
            raise ValueError(f"task {task!r} has no examples")
        scores[task] = sum(values) / len(values)
    return sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))
