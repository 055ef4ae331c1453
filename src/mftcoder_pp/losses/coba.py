"""CoBa, MFTCoder's convergence-balanced task weights (a baseline of the experiments).

The convergence balancer of Gong et al. ("CoBa: Convergence Balancer for Multitask Finetuning
of Large Language Models", EMNLP 2024), following the official implementation
(codefuse-ai/MFTCoder, mftcoder_accelerate/src/utils/loss_utils.py, class CoBaStatus, and
configs/coba_train_config.json). Per-task validation losses ℓ_i are divided by each task's first
observed validation loss (official: `valid_task_loss_begining`). With K tasks and a window of the
last N validation points:

- slope α_i(t): ordinary least-squares slope of task i's normalised validation loss against the
  validation-point index over the window (official `fit_window_slope`: unit weights, points with a
  missing/zero loss dropped, 0 when fewer than 2 points remain);
- α_max(t): the slope of the curve max_i ℓ_i over the same window (official: slope of
  `torch.max(history, dim=0)`, i.e. of the worst task's loss curve);
- RCS (relative convergence score) = softmax_i( K · α_i(t) / Σ_j |α_j(t)| ): among tasks, the one
  whose loss falls slowest (or rises) scores highest;
- ACS (absolute convergence score) = softmax_i( −n · α_i(t) / Σ_{s in last n} |α_i(s)| ) over the
  task's own last n ≤ N slopes: a task whose loss now rises relative to its own history scores
  lowest;
- DF (divergence factor) = min(1, T · softmax_s( −τ · T · α_max(s) / Σ_{s'} |α_max(s')| )[t]) over
  all T slopes since warm-up: ≈1 while the worst-task slope is as negative as usual, → 0 once it
  turns up (some task starts to diverge);
- weights ω = softmax( K · (DF · RCS + (1 − DF) · ACS) ), summing to 1 as in the official code;
  then, if any ω_i < 1/(10K), ω ← ω · (1 − K/(10K)) + 1/(10K) (official `minimum_weight`).

Net effect: while all tasks converge, slower-converging tasks get more weight (RCS); when a task
diverges, DF drops and ACS down-weights it. Before `warmup_points` validation points exist the
weights are uniform (1/K), as in the official warm-up. The official config uses warm-up 100,
history window 200, τ = 5; its trainer evaluates one validation batch after *every* optimizer step,
so its "steps" are our validation points: scale window and warm-up to the trainer's evaluation
cadence (`mixing.coba` in the train config holds the defaults used here).

Deviations, on purpose: DF is clipped at 1 as in the paper (DF interpolates between RCS and ACS;
the loss_utils.py version read applies no clip, a later CodeFuse variant does); the ACS history is
the last n ≤ N slopes, as in the paper, whereas the official slice `per_task_slope_list[:,
start_step:]` mixes a step index into a list that starts at warm-up (an off-by-warm-up window).

The weights enter the task loss through `losses.tokens.task_weights("coba", ...)`: the official
weighted_loss_mode "coba", Σ_i ω_i · L_i over the tasks present in the batch divided by Σ ω_i over
those tasks (with every task present the divisor is 1).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

_STATE_VERSION = 1


def _softmax(xs: Sequence[float]) -> list[float]:
    top = max(xs)
    e = [math.exp(x - top) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def _ols_slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y on x (unit weights); 0 with fewer than 2 points or no spread in x."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


class CoBa:
    """Convergence-balanced task weights from per-task validation losses (see the module docstring).

    `tasks[i]` is task id i in `per_task_token_losses`. Call `observe_validation({task: loss})` at
    every validation point (include one before training, at step 0: it sets the normalisers); read
    `weights()` / `weights_tensor()` for the training loss in between."""

    def __init__(self, tasks: Sequence[str], *, window: int, temperature: float, warmup_points: int,
                 min_weight: float | None = None):
        self.tasks = list(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must be non-empty and distinct, got {self.tasks}")
        if window < 2 or warmup_points < 2:
            raise ValueError("window and warmup_points must be >= 2 (a slope needs two points)")
        k = len(self.tasks)
        self.window, self.temperature, self.warmup_points = int(window), float(temperature), int(warmup_points)
        self.min_weight = 1.0 / (10 * k) if min_weight is None else float(min_weight)
        self.base: list[float | None] = [None] * k
        self.history: list[list[float | None]] = []   # last `window` rows of normalised losses
        self.n_points = 0                              # validation points seen so far
        self.slopes: list[list[float]] = []            # last `window` per-task slope vectors (for ACS)
        self.max_slopes: list[float] = []              # every α_max since warm-up (for DF)
        self._weights = [1.0 / k] * k
        self.last: dict = {}                           # rcs / acs / df / slopes of the last update

    def observe_validation(self, losses: Mapping[str, float]) -> None:
        """Record per-task validation losses (token-mean CE) of one validation point; tasks missing
        from `losses`, or with a non-finite or non-positive loss, count as missing at this point."""
        unknown = set(losses) - set(self.tasks)
        if unknown:
            raise KeyError(f"unknown tasks {sorted(unknown)}")
        row: list[float | None] = []
        for i, t in enumerate(self.tasks):
            v = losses.get(t)
            v = float(v) if v is not None else None
            if v is None or not math.isfinite(v) or v <= 0:
                row.append(None)
                continue
            if self.base[i] is None:
                self.base[i] = v
            row.append(v / self.base[i])
        self.history.append(row)
        self.history = self.history[-self.window:]
        self.n_points += 1
        if self.n_points >= self.warmup_points:
            self._update()

    def _update(self) -> None:
        k = len(self.tasks)
        x0 = self.n_points - len(self.history)
        slopes = []
        for i in range(k):
            pts = [(x0 + j, row[i]) for j, row in enumerate(self.history) if row[i] is not None]
            slopes.append(_ols_slope(pts))
        worst = [(x0 + j, max(v for v in row if v is not None)) for j, row in enumerate(self.history)
                 if any(v is not None for v in row)]
        self.slopes = (self.slopes + [slopes])[-self.window:]
        self.max_slopes.append(_ols_slope(worst))

        denom = sum(abs(s) for s in slopes)
        rcs = _softmax([k * s / denom if denom > 0 else 0.0 for s in slopes])

        n = len(self.slopes)
        acs_logits = []
        for i in range(k):
            d = sum(abs(row[i]) for row in self.slopes)
            acs_logits.append(-n * slopes[i] / d if d > 0 else 0.0)
        acs = _softmax(acs_logits)

        m = self.max_slopes
        dm = sum(abs(v) for v in m)
        df_soft = _softmax([-self.temperature * len(m) * v / dm if dm > 0 else 0.0 for v in m])
        df = min(1.0, df_soft[-1] * len(m))

        w = _softmax([k * (df * r + (1 - df) * a) for r, a in zip(rcs, acs)])
        if any(v < self.min_weight for v in w):
            w = [v * (1 - self.min_weight * k) + self.min_weight for v in w]
        self._weights = w
        self.last = {"rcs": rcs, "acs": acs, "df": df, "slopes": slopes, "max_slope": m[-1]}

    @property
    def warmed_up(self) -> bool:
        return self.n_points >= self.warmup_points

    def weights(self) -> dict[str, float]:
        """Current ω per task, summing to 1 (uniform 1/K during warm-up)."""
        return dict(zip(self.tasks, self._weights))

    def weights_tensor(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """ω in task-id order (`losses.tokens.task_weights`)."""
        return torch.tensor(self._weights, device=device, dtype=dtype)

    def state_dict(self) -> dict:
        return {"version": _STATE_VERSION, "tasks": list(self.tasks), "window": self.window,
                "temperature": self.temperature, "warmup_points": self.warmup_points,
                "min_weight": self.min_weight, "base": list(self.base),
                "history": [list(r) for r in self.history], "n_points": self.n_points,
                "slopes": [list(r) for r in self.slopes], "max_slopes": list(self.max_slopes),
                "weights": list(self._weights), "last": dict(self.last)}

    def load_state_dict(self, d: Mapping) -> None:
        if d.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported CoBa state version {d.get('version')!r}")
        if list(d["tasks"]) != self.tasks:
            raise ValueError(f"state is for tasks {d['tasks']}, this CoBa has {self.tasks}")
        self.window, self.temperature = int(d["window"]), float(d["temperature"])
        self.warmup_points, self.min_weight = int(d["warmup_points"]), float(d["min_weight"])
        self.base = [None if v is None else float(v) for v in d["base"]]
        self.history = [[None if v is None else float(v) for v in r] for r in d["history"]]
        self.n_points = int(d["n_points"])
        self.slopes = [[float(v) for v in r] for r in d["slopes"]]
        self.max_slopes = [float(v) for v in d["max_slopes"]]
        self._weights = [float(v) for v in d["weights"]]
        self.last = dict(d["last"])
