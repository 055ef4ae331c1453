"""Per-task token losses for mixed batches, and MFTCoder's balancing baselines (data-balanced, CoBa).

`per_task_token_losses` turns one forward pass over a batch that mixes tasks into per-task sums:
summed token cross-entropy, token counts, argmax-correct counts and summed predictive entropy. The
losses below are functions of those sums, so they compose with gradient accumulation and with
all-reduce across processes (sum the `TaskStats` first, then take ratios).

* `token_mean_loss`: plain SFT, Σ token losses / Σ tokens.
* `data_balanced_loss`: MFTCoder's data-balanced loss, the mean over the tasks present in the batch
  of each task's token-mean loss (MFTCoder `loss_func_mft`, weighted_loss_mode "case3" with equal
  weights), so a task with long or many samples does not dominate.
* `CoBa`: MFTCoder's convergence balancer (Gong et al., "CoBa: Convergence Balancer for Multitask
  Finetuning of Large Language Models", EMNLP 2024), following the official implementation
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
  weights are uniform (1/K), as in the official warm-up. Defaults are the official config's:
  warm-up 100 points, history window 200, τ = 5. The official trainer evaluates one validation batch
  after *every* optimizer step, so its "steps" are our validation points; scale both to the trainer's
  evaluation cadence.

  Deviations, on purpose: DF is clipped at 1 as in the paper (DF interpolates between RCS and ACS;
  the loss_utils.py version read applies no clip, a later CodeFuse variant does); the ACS history is
  the last n ≤ N slopes, as in the paper, whereas the official slice `per_task_slope_list[:,
  start_step:]` mixes a step index into a list that starts at warm-up (an off-by-warm-up window).

  `CoBa.weighted_loss` follows the official weighted_loss_mode "coba": Σ_i ω_i · L_i over the tasks
  present in the batch, divided by Σ ω_i over those tasks (with every task present the divisor is 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
_STATE_VERSION = 1


@dataclass
class TaskStats:
    """Per-task sums over the target tokens of a batch; index i is task id i.

    loss_sum (K,) float32, differentiable; token_count (K,) int64; correct (K,) int64 (argmax hits);
    entropy_sum (K,) float32, detached (predictive entropy in nats, summed over target tokens)."""

    loss_sum: torch.Tensor
    token_count: torch.Tensor
    correct: torch.Tensor
    entropy_sum: torch.Tensor

    def present(self) -> torch.Tensor:
        """Bool mask of the tasks with at least one target token."""
        return self.token_count > 0

    def mean_loss(self) -> torch.Tensor:
        """Token-mean loss per task (0 where absent)."""
        return self.loss_sum / self.token_count.clamp(min=1).to(self.loss_sum.dtype)

    def mean_entropy(self) -> torch.Tensor:
        return self.entropy_sum / self.token_count.clamp(min=1).to(self.entropy_sum.dtype)

    def accuracy(self) -> torch.Tensor:
        return self.correct.to(torch.float32) / self.token_count.clamp(min=1).to(torch.float32)

    def detach(self) -> "TaskStats":
        return TaskStats(self.loss_sum.detach(), self.token_count, self.correct, self.entropy_sum.detach())

    def __add__(self, other: "TaskStats") -> "TaskStats":
        return TaskStats(self.loss_sum + other.loss_sum, self.token_count + other.token_count,
                         self.correct + other.correct, self.entropy_sum + other.entropy_sum)


def per_task_token_losses(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor, num_tasks: int, *,
                          ignore_index: int = IGNORE_INDEX, with_entropy: bool = True,
                          chunk_elements: int = 1 << 26) -> TaskStats:
    """Per-task token statistics of one batch.

    logits (B, T, V), labels (B, T) with `ignore_index` on non-target positions, task_ids (B,) or (B, 1)
    ints in [0, num_tasks), or (B, T) — a task per token, for packed rows that mix samples (the token at
    position t + 1 is accounted to task_ids[:, t + 1]). Shifting is done here, as in Hugging Face causal
    LMs: position t's logits predict labels[t + 1], i.e. logits[:, :-1] are scored against labels[:, 1:];
    pass unshifted labels (labels == input_ids with prompt/padding set to -100).

    One `F.cross_entropy(reduction="none")` over the valid positions only (logits upcast to float32),
    then `index_add` by task. Accuracy and entropy are computed without gradient, in chunks of about
    `chunk_elements` logits, from log_softmax of the valid positions only."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    per_token = task_ids.dim() == 2 and task_ids.shape == labels.shape  # packed rows: a task per token
    task_ids = (task_ids if per_token else task_ids.reshape(-1)).to(device=logits.device, dtype=torch.long)
    if not per_token and task_ids.numel() != logits.shape[0]:
        raise ValueError(f"{task_ids.numel()} task ids for a batch of {logits.shape[0]}")
    device, vocab = logits.device, logits.shape[-1]
    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:].to(logits.device)
    mask = shift_labels != ignore_index
    targets = shift_labels[mask]                                        # (N,)
    token_task = (task_ids[:, 1:] if per_token else task_ids[:, None].expand_as(shift_labels))[mask]  # (N,)
    if token_task.numel() and (int(token_task.min()) < 0 or int(token_task.max()) >= num_tasks):
        raise ValueError(f"task ids of target tokens must be in [0, {num_tasks})")
    valid_logits = shift_logits[mask]                                   # (N, V), copies valid rows only

    zeros = torch.zeros(num_tasks, dtype=torch.float32, device=device)
    if targets.numel() == 0:
        loss_sum = zeros + logits.sum() * 0.0  # keeps the graph: backward() works and gives zeros
        count = torch.zeros(num_tasks, dtype=torch.long, device=device)
        return TaskStats(loss_sum, count, count.clone(), zeros.clone())

    token_loss = F.cross_entropy(valid_logits.float(), targets, reduction="none")
    loss_sum = zeros.index_add(0, token_task, token_loss)
    count = torch.bincount(token_task, minlength=num_tasks)

    with torch.no_grad():
        hits = torch.empty_like(targets, dtype=torch.bool)
        ent = torch.zeros(targets.numel(), dtype=torch.float32, device=device)
        rows = max(1, chunk_elements // max(vocab, 1))
        for start in range(0, targets.numel(), rows):
            chunk = valid_logits[start:start + rows].detach()
            hits[start:start + rows] = chunk.argmax(dim=-1) == targets[start:start + rows]
            if with_entropy:
                logp = F.log_softmax(chunk.float(), dim=-1)
                ent[start:start + rows] = -(logp.exp() * logp).sum(dim=-1)
        correct = torch.zeros(num_tasks, dtype=torch.long, device=device).index_add(0, token_task, hits.long())
        entropy_sum = zeros.index_add(0, token_task, ent)
    return TaskStats(loss_sum, count, correct, entropy_sum)


def token_mean_loss(stats: TaskStats) -> torch.Tensor:
    """Plain SFT loss: Σ token losses / Σ target tokens (0 with a graph if there are none)."""
    return stats.loss_sum.sum() / stats.token_count.sum().clamp(min=1).to(stats.loss_sum.dtype)


def data_balanced_loss(stats: TaskStats) -> torch.Tensor:
    """MFTCoder's data-balanced loss: mean over the tasks present of each task's token-mean loss."""
    present = stats.present()
    n = present.sum().clamp(min=1).to(stats.loss_sum.dtype)
    return (stats.mean_loss() * present.to(stats.loss_sum.dtype)).sum() / n


def weighted_task_loss(stats: TaskStats, weights: torch.Tensor) -> torch.Tensor:
    """Σ_i ω_i · L_i / Σ_i ω_i over the tasks present (L_i = task i's token-mean loss)."""
    w = weights.to(device=stats.loss_sum.device, dtype=stats.loss_sum.dtype) * stats.present().to(stats.loss_sum.dtype)
    return (w * stats.mean_loss()).sum() / w.sum().clamp(min=torch.finfo(w.dtype).tiny)


# -- CoBa ---------------------------------------------------------------------------------------------

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

    def __init__(self, tasks: Sequence[str], window: int = 200, temperature: float = 5.0, warmup_points: int = 100,
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
        """ω in task-id order, for `weighted_loss`."""
        return torch.tensor(self._weights, device=device, dtype=dtype)

    @staticmethod
    def weighted_loss(stats: TaskStats, weights_tensor: torch.Tensor) -> torch.Tensor:
        """Σ_i ω_i · L_i / Σ_i ω_i over the tasks present in the batch (official mode "coba")."""
        return weighted_task_loss(stats, weights_tensor)

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
