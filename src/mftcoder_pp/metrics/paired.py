"""Paired comparisons of two evaluated rows over the same (task, seed) cells.

Two rows of an experiment answer the same tasks under the same seeds, so their difference is
measured cell by cell: d[t, s] = a[t, s] − b[t, s] (per-sample pass values, 0/1 for greedy). The
uncertainty that matters is *which tasks* were drawn — seeds of one task are not independent draws
— so the bootstrap resamples tasks with replacement and keeps each task's seeds together (paired).

- `paired_difference(a, b)`: mean difference, its 95% bootstrap CI (percentile, resampling tasks),
  the standard error and the minimum detectable difference.
- `row_interval(a)`: a row's own mean with the same task bootstrap (a greedy base evaluated once
  still has an uncertainty: the tasks).
- Minimum detectable difference (MDD): the true difference this comparison detects with 80% power
  in a two-sided test at α = 0.05, (z_0.975 + z_0.80) · SE ≈ 2.80 · SE, where SE is the standard
  error of the mean difference, sd over tasks of the per-task mean difference / sqrt(tasks).
  Differences below the MDD can be real and still be missed; a CI that excludes 0 is what
  "resolved" means.

A row evaluated once (the base: one greedy run) is compared against every seed of the other row by
repeating its value per seed (`broadcast_seeds`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

Z_975, Z_80 = 1.959964, 0.841621
MDD_FACTOR = Z_975 + Z_80  # 2.80
BOOTSTRAP_REPLICATES = 10_000

Cells = Mapping[str, Mapping[int, float]]  # task -> seed -> value


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    tasks: int
    seeds: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    mean: float  # mean over cells of a − b
    low: float  # 95% bootstrap CI (resampling tasks, seeds kept paired)
    high: float
    se: float  # standard error of the mean difference (tasks)
    mdd: float  # minimum detectable difference, 80% power, α = 0.05
    tasks: int
    seeds: int
    wins: int  # cells where a passed and b did not (0/1 values)
    losses: int

    @property
    def resolved(self) -> bool:
        """The CI excludes zero."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "resolved": self.resolved}


def broadcast_seeds(cells: Cells, seeds: Sequence[int]) -> dict[str, dict[int, float]]:
    """A row evaluated under one seed, repeated for every seed of the row it is compared with."""
    out = {}
    for task, per_seed in cells.items():
        if len(per_seed) != 1:
            raise ValueError(f"task {task!r}: broadcast needs exactly one seed, has {sorted(per_seed)}")
        value = next(iter(per_seed.values()))
        out[task] = {s: value for s in seeds}
    return out


def matrix(cells: Cells, tasks: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
    """(tasks, seeds) array; every cell must be present (no silent gaps in a paired comparison)."""
    out = np.empty((len(tasks), len(seeds)), dtype=np.float64)
    for i, t in enumerate(tasks):
        row = cells.get(t)
        if row is None:
            raise ValueError(f"task {t!r} has no result")
        for j, s in enumerate(seeds):
            if s not in row:
                raise ValueError(f"task {t!r} has no result for seed {s}")
            out[i, j] = row[s]
    return out


def common_cells(a: Cells, b: Cells) -> tuple[list[str], list[int]]:
    """Tasks present in both, and the seeds every one of those tasks has in both."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("the two rows have no task in common")
    seeds = set.intersection(*(set(a[t]) & set(b[t]) for t in tasks))
    if not seeds:
        raise ValueError("the two rows have no seed in common")
    return tasks, sorted(seeds)


def _bootstrap_means(per_task: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """Means of `per_task` (n,) over task resamples with replacement: (replicates,)."""
    rng = np.random.default_rng(seed)
    n = per_task.shape[0]
    out = np.empty(replicates)
    for start in range(0, replicates, 1000):  # bounded memory: 1000 x n indices at a time
        stop = min(replicates, start + 1000)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = per_task[idx].mean(axis=1)
    return out


def row_interval(cells: Cells, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> Interval:
    tasks = sorted(cells)
    seeds = sorted(set.intersection(*(set(cells[t]) for t in tasks)))
    m = matrix(cells, tasks, seeds)
    per_task = m.mean(axis=1)
    boots = _bootstrap_means(per_task, replicates, seed)
    low, high = np.percentile(boots, [2.5, 97.5])
    return Interval(float(per_task.mean()), float(low), float(high), len(tasks), len(seeds))


def paired_difference(a: Cells, b: Cells, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> PairedDifference:
    """a − b over their common (task, seed) cells."""
    tasks, seeds = common_cells(a, b)
    d = matrix(a, tasks, seeds) - matrix(b, tasks, seeds)  # (T, S)
    per_task = d.mean(axis=1)  # seeds of a task stay together
    n = len(tasks)
    se = float(per_task.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    boots = _bootstrap_means(per_task, replicates, seed)
    low, high = np.percentile(boots, [2.5, 97.5])
    return PairedDifference(float(d.mean()), float(low), float(high), se, MDD_FACTOR * se, n, len(seeds),
                            int((d > 0).sum()), int((d < 0).sum()))


def tasks_for_mdd(per_task_sd: float, target: float) -> int:
    """Tasks needed for an MDD of `target` when per-task mean differences have this sd."""
    if target <= 0:
        raise ValueError("target must be positive")
    return math.ceil((MDD_FACTOR * per_task_sd / target) ** 2)
