"""Which task the next optimizer step trains on: uniform, temperature (Eq. 13) or ATDS (Eq. 1).

The trainer draws ONE task per optimizer step (every micro-batch of that step comes from it) with
`TaskScheduler.next_task()`, reports the step's statistics with `observe(task, loss, entropy)` and
calls `step_done(step)` after the optimizer step. Three strategies share that interface:

* ``uniform``: π(t) = 1/K over the tasks with data.
* ``temperature``: π(t) = |D_t|^(1/T) / Σ_j |D_j|^(1/T) (`data.sampling.temperature_probabilities`),
  fixed for the whole run.
* ``atds`` (adaptive task dispatch, Eq. 1), in the reading of docs/design.md:

      π(t_i) = softmax_i( log prior(t_i) + α·Ĥ(t_i) + β·ΔL̂(t_i) ),   α = 0.7, β = 0.3

  - H(t_i): EMA (factor `ema`) of the model's mean predictive entropy on task i's batches, as
    reported through `observe`. The first observation initialises the EMA.
  - ΔL(t_i), the learning velocity: with L̄_i the EMA of task i's training loss *before* the new
    observation ℓ, each observation contributes r = (L̄_i − ℓ) / L̄_i — the relative loss change
    against the task's recent level, positive when the loss is falling — and ΔL_i is the EMA of r.
    (The first observation of a task only initialises L̄_i; r needs a previous level. Differencing
    against the smoothed level rather than the previous raw batch halves the noise of consecutive
    batch differences; tasks are drawn at irregular intervals, so "per observation" is the unit.)
  - Normalisation: Ĥ and ΔL̂ are z-scores across the tasks that have at least one observation
    (population standard deviation; all zeros when the spread is ~0). A task without observations
    gets the mean, i.e. 0. So neither term dominates by scale, and α, β weigh comparable numbers.
  - The prior stays in as a log-prior offset. Why: (1) with equal statistics π equals the
    temperature prior exactly, so ATDS starts from — and stays anchored to — Eq. 13's schedule;
    (2) z-scores are bounded (|z| ≤ √(K−1)), so the statistics tilt a task's odds by a bounded factor
    and cannot starve a big task or flood the run with a tiny one; (3) a plain softmax(α·Ĥ + β·ΔL̂)
    would forget data sizes altogether after the first refresh. Tasks with no data (prior 0) are
    never drawn.
  - π starts at the prior and is recomputed only when `step_done(step)` sees step % refresh_every
    == 0 (K = `refresh_every`); between refreshes it is constant, so the statistics collected over
    K steps decide the next K steps.

`velocity_sign` (ATDS): Eq. 1 leaves the sign of ΔL open. +1 (the default, the paper's form as
printed) raises the odds of tasks whose loss is falling fastest; −1 raises those whose loss is not
falling — "prioritise unstable tasks", as CoBa does. A config choice, decided on a dev split.

`min_prob` (optional, every strategy): π ← (1 − m·K')·π + m over the K' tasks with data, so each
gets at least m and the sum stays 1 (the same floor form as MFTCoder's CoBa; needs m·K' ≤ 1).

Determinism and resume: draws use the scheduler's own `random.Random(seed)`; `state_dict()` returns
plain JSON data (π, statistics, the Mersenne-Twister state as a list of ints) and `load_state_dict`
restores it, so a resumed run makes exactly the draws and π updates the uninterrupted one would.
`load_state_dict` refuses a state saved with other tasks, sizes, strategy or hyperparameters.

Curriculum phases: build one scheduler per phase from that phase's task subset (construction with
any subset of tasks works; nothing else is phase-aware).
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Literal, Mapping

from ..data.sampling import temperature_probabilities

Strategy = Literal["temperature", "atds", "uniform"]
STRATEGIES = ("temperature", "atds", "uniform")
_STATE_VERSION = 1


def zscore(values: Mapping[str, float | None], tasks: list[str], eps: float = 1e-12) -> dict[str, float]:
    """z-scores of the tasks that have a value; tasks without one (None) get 0 (the mean).
    Population std; if the spread is below `eps` every task gets 0."""
    seen = [values[t] for t in tasks if values.get(t) is not None]
    if not seen:
        return {t: 0.0 for t in tasks}
    mean = sum(seen) / len(seen)
    std = math.sqrt(sum((v - mean) ** 2 for v in seen) / len(seen))
    if std < eps:
        return {t: 0.0 for t in tasks}
    return {t: 0.0 if values.get(t) is None else (values[t] - mean) / std for t in tasks}


class TaskScheduler:
    """One task per optimizer step, drawn from π (see the module docstring for the strategies)."""

    def __init__(self, sizes: Mapping[str, int], strategy: Strategy, *, temperature: float, alpha: float, beta: float,
                 refresh_every: int, ema: float, seed: int, min_prob: float, velocity_sign: int):
        """Every setting is required: the train config (`mixing`, `mixing.atds`) holds the defaults."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if not sizes:
            raise ValueError("no tasks to schedule")
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        self.tasks: list[str] = sorted(sizes)
        self.sizes = {t: int(sizes[t]) for t in self.tasks}
        self.active = [t for t in self.tasks if self.sizes[t] > 0]
        if not self.active:
            raise ValueError("every task is empty")
        if min_prob < 0 or min_prob * len(self.active) > 1 + 1e-12:
            raise ValueError(f"min_prob={min_prob} is impossible for {len(self.active)} tasks")
        self.strategy = strategy
        self.temperature = float(temperature)
        self.alpha, self.beta = float(alpha), float(beta)
        self.refresh_every, self.ema, self.seed = int(refresh_every), float(ema), int(seed)
        self.min_prob = float(min_prob)
        if velocity_sign not in (1, -1):
            raise ValueError(f"velocity_sign must be 1 or -1, got {velocity_sign!r}")
        self.velocity_sign = int(velocity_sign)

        if strategy == "uniform":
            prior = {t: (1.0 / len(self.active) if t in self.active else 0.0) for t in self.tasks}
        else:
            prior = temperature_probabilities(self.sizes, self.temperature)
        self.prior: dict[str, float] = {t: prior[t] for t in self.tasks}
        # log prior in log space (a tiny task's prior may underflow to 0.0 as a float)
        if strategy == "uniform":
            self._log_prior = {t: -math.log(len(self.active)) for t in self.active}
        else:
            raw = {t: math.log(self.sizes[t]) / self.temperature for t in self.active}
            top = max(raw.values())
            lse = top + math.log(sum(math.exp(v - top) for v in raw.values()))
            self._log_prior = {t: v - lse for t, v in raw.items()}
        self._probs = self._floor(dict(self.prior))
        # Per-task statistics for ATDS (kept for every strategy: they are cheap and useful in logs).
        self._stats = {t: {"n": 0, "entropy": None, "loss": None, "velocity": None} for t in self.tasks}
        self._rng = random.Random(self.seed)
        self.last_step: int | None = None
        self.refreshes = 0

    # -- π -------------------------------------------------------------------------------------
    def probabilities(self) -> dict[str, float]:
        """Current π over all tasks (sorted keys; tasks without data have 0)."""
        return dict(self._probs)

    def _floor(self, probs: dict[str, float]) -> dict[str, float]:
        m = self.min_prob
        if m <= 0:
            return probs
        k = len(self.active)
        return {t: ((1 - m * k) * probs[t] + m if t in self.active else 0.0) for t in self.tasks}

    def atds_probabilities(self) -> dict[str, float]:
        """π from the current statistics (Eq. 1 with the log-prior offset); does not change state."""
        h = zscore({t: self._stats[t]["entropy"] for t in self.active}, self.active)
        v = zscore({t: self._stats[t]["velocity"] for t in self.active}, self.active)
        logits = {t: self._log_prior[t] + self.alpha * h[t] + self.velocity_sign * self.beta * v[t] for t in self.active}
        top = max(logits.values())
        w = {t: math.exp(x - top) for t, x in logits.items()}
        total = sum(w.values())
        return self._floor({t: w.get(t, 0.0) / total for t in self.tasks})

    def stats(self) -> dict[str, dict]:
        """Per-task statistics: n observations, EMA entropy, EMA loss, EMA velocity (None if unseen)."""
        return {t: dict(s) for t, s in self._stats.items()}

    # -- the training-loop interface -----------------------------------------------------------
    def next_task(self) -> str:
        """Draw the task of the next optimizer step from π with the scheduler's own RNG."""
        cum, acc = [], 0.0
        for t in self.tasks:
            acc += self._probs[t]
            cum.append(acc)
        u = self._rng.random() * acc
        i = bisect.bisect_right(cum, u)
        if i >= len(self.tasks) or self._probs[self.tasks[i]] <= 0.0:  # float edge: last task with mass
            i = max(j for j, t in enumerate(self.tasks) if self._probs[t] > 0.0)
        return self.tasks[i]

    def observe(self, task: str, loss: float, entropy: float) -> None:
        """Statistics of the step just taken on `task`: its mean training loss and mean predictive
        entropy (nats per target token). Non-finite values are ignored."""
        if task not in self._stats:
            raise KeyError(f"unknown task {task!r}")
        loss, entropy = float(loss), float(entropy)
        s, a = self._stats[task], self.ema
        if math.isfinite(entropy):
            s["entropy"] = entropy if s["entropy"] is None else a * s["entropy"] + (1 - a) * entropy
        if math.isfinite(loss):
            prev = s["loss"]
            if prev is not None:
                r = (prev - loss) / prev if prev > 0 else 0.0
                s["velocity"] = r if s["velocity"] is None else a * s["velocity"] + (1 - a) * r
                s["loss"] = a * prev + (1 - a) * loss
            else:
                s["loss"] = loss
        s["n"] += 1

    def step_done(self, step: int) -> bool:
        """Call after optimizer step `step` (1-based count of completed steps). ATDS recomputes π when
        step % refresh_every == 0; returns True exactly when π was refreshed."""
        self.last_step = int(step)
        if self.strategy != "atds" or step <= 0 or step % self.refresh_every:
            return False
        self._probs = self.atds_probabilities()
        self.refreshes += 1
        return True

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        version, internal, gauss_next = self._rng.getstate()
        return {
            "version": _STATE_VERSION,
            "strategy": self.strategy,
            "tasks": list(self.tasks),
            "sizes": dict(self.sizes),
            "hyper": {"temperature": self.temperature, "alpha": self.alpha, "beta": self.beta,
                      "refresh_every": self.refresh_every, "ema": self.ema, "seed": self.seed,
                      "min_prob": self.min_prob, "velocity_sign": self.velocity_sign},
            "probs": [self._probs[t] for t in self.tasks],
            "stats": self.stats(),
            "rng": [version, list(internal), gauss_next],
            "last_step": self.last_step,
            "refreshes": self.refreshes,
        }

    def load_state_dict(self, d: Mapping) -> None:
        if d.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported TaskScheduler state version {d.get('version')!r}")
        if d["strategy"] != self.strategy or list(d["tasks"]) != self.tasks:
            raise ValueError(f"state is for strategy {d['strategy']!r} over {d['tasks']}, "
                             f"this scheduler is {self.strategy!r} over {self.tasks}")
        mine = self.state_dict()
        for key in ("sizes", "hyper"):
            if dict(d[key]) != mine[key]:
                raise ValueError(f"state {key} {dict(d[key])} differ from this scheduler's {mine[key]}")
        self._probs = {t: float(p) for t, p in zip(self.tasks, d["probs"])}
        self._stats = {t: {"n": int(s["n"]), "entropy": s["entropy"], "loss": s["loss"], "velocity": s["velocity"]}
                       for t, s in d["stats"].items()}
        version, internal, gauss_next = d["rng"]
        self._rng.setstate((int(version), tuple(int(x) for x in internal), gauss_next))
        self.last_step = d["last_step"]
        self.refreshes = int(d["refreshes"])
