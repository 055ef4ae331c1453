"""Paired row comparisons: differences per (task, seed) cell, task bootstrap with seeds kept together."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mftcoder_pp.metrics.paired import (MDD_FACTOR, broadcast_seeds, paired_difference, row_interval,
                                        tasks_for_mdd)


def cells(values: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    return {t: dict(enumerate(v)) for t, v in values.items()}


def test_identical_and_opposite_rows():
    a = cells({f"t{i}": [i % 2, 1, 0] for i in range(20)})
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high, same.wins, same.losses) == (0.0, 0.0, 0.0, 0, 0)
    assert not same.resolved
    ones, zeros = cells({f"t{i}": [1, 1] for i in range(10)}), cells({f"t{i}": [0, 0] for i in range(10)})
    d = paired_difference(ones, zeros)
    assert (d.mean, d.low, d.high, d.wins, d.losses, d.tasks, d.seeds) == (1.0, 1.0, 1.0, 20, 0, 10, 2)
    assert d.resolved


def test_standard_error_and_mdd_are_over_per_task_means():
    a = cells({"x": [1, 1], "y": [1, 0], "z": [0, 0], "w": [1, 0]})
    b = cells({"x": [0, 0], "y": [0, 0], "z": [0, 0], "w": [0, 1]})
    d = paired_difference(a, b)
    per_task = np.array([1.0, 0.5, 0.0, 0.0])
    assert d.mean == pytest.approx(per_task.mean())
    assert d.se == pytest.approx(per_task.std(ddof=1) / 2)
    assert d.mdd == pytest.approx(MDD_FACTOR * d.se)
    assert (d.wins, d.losses) == (4, 1)


def test_bootstrap_ci_matches_the_normal_approximation_on_many_tasks():
    rng = random.Random(0)
    a = cells({f"t{i}": [float(rng.random() < 0.6) for _ in range(3)] for i in range(400)})
    b = cells({f"t{i}": [float(rng.random() < 0.5) for _ in range(3)] for i in range(400)})
    d = paired_difference(a, b)
    assert d.low < d.mean < d.high
    assert (d.high - d.low) / 2 == pytest.approx(1.96 * d.se, rel=0.1)
    assert paired_difference(a, b) == d  # seeded: the same CI every time


def test_seeds_of_a_task_move_together():
    """Perfectly correlated seeds: the CI is that of one seed, not sqrt(3) times narrower."""
    rng = random.Random(1)
    one = {f"t{i}": float(rng.random() < 0.5) for i in range(300)}
    a1 = cells({t: [v] for t, v in one.items()})
    a3 = cells({t: [v, v, v] for t, v in one.items()})
    zero1, zero3 = cells({t: [0.0] for t in one}), cells({t: [0.0] * 3 for t in one})
    d1, d3 = paired_difference(a1, zero1), paired_difference(a3, zero3)
    assert d3.low == pytest.approx(d1.low) and d3.high == pytest.approx(d1.high)


def test_base_evaluated_once_is_broadcast_over_seeds():
    base = cells({"x": [1], "y": [0]})
    sft = cells({"x": [1, 1, 0], "y": [1, 1, 1]})
    d = paired_difference(sft, broadcast_seeds(base, [0, 1, 2]))
    assert d.seeds == 3 and d.mean == pytest.approx((0 + 0 - 1 + 1 + 1 + 1) / 6)
    with pytest.raises(ValueError, match="exactly one seed"):
        broadcast_seeds(sft, [0, 1, 2])


def test_missing_cells_are_errors_not_gaps():
    with pytest.raises(ValueError, match="no task in common"):
        paired_difference(cells({"x": [1]}), cells({"y": [1]}))
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({"x": {0: 1.0}}, {"x": {1: 1.0}})


def test_row_interval_and_sizing():
    r = row_interval(cells({f"t{i}": [float(i < 30)] for i in range(100)}))
    assert r.mean == pytest.approx(0.3) and r.low < 0.3 < r.high and (r.tasks, r.seeds) == (100, 1)
    assert tasks_for_mdd(0.3, 0.05) == math.ceil((MDD_FACTOR * 0.3 / 0.05) ** 2)


def test_rows_that_agree_everywhere_show_no_mdd_of_zero():
    """Two rows equal on every cell carry no estimate of the paired variance: the report says so and
    gives the rule-of-three bound instead of an MDD of 0.0."""
    from mftcoder_pp.report.experiment import _mdd

    zeros = cells({f"t{i}": [0] for i in range(40)})
    same = paired_difference(zeros, zeros)
    assert same.mdd == 0.0 and _mdd(same) == "n/a (no discordant cell; ≤ 7.5 undetected)"
    one = cells({f"t{i}": [int(i == 0)] for i in range(40)})
    assert _mdd(paired_difference(one, zeros)) == f"{100 * paired_difference(one, zeros).mdd:.1f}"
