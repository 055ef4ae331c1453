"""Per-task token losses of a batch that mixes tasks, and the one way they are weighted into a task loss.

`task_stats` turns one forward pass into per-task sums (`TaskStats`): summed token cross-entropy, token
counts, argmax-correct counts and summed predictive entropy, from the per-target-token scores of
`losses/target_head.py` (the LM head run on target positions only); `per_task_token_losses` does the same
from full (B, T, V) logits. The task loss is a
function of those sums, so it composes with gradient accumulation and with all-reduce across
processes (sum first, then take ratios):

    L_task = Σ_i w_i · loss_sum_i / N_i

with N_i task i's target tokens in the normalising set (the whole optimizer step's global batch in
training, so a token weighs the same in whichever micro-batch or process it lands) and w_i from
`task_weights`:

* ``token_mean``: w_i = N_i / N, i.e. Σ token losses / Σ tokens (plain SFT: every token equal);
* ``data_balanced``: w_i = 1 / K_present: MFTCoder's data-balanced loss, the mean over the tasks
  present of each task's token-mean loss (MFTCoder `loss_func_mft`, weighted_loss_mode "case3" with
  equal weights), so a task with long or many samples does not dominate;
* ``coba``: w_i = ω_i / Σ_present ω_j with CoBa's convergence-balanced ω (losses/coba.py), over the
  tasks present (official weighted_loss_mode "coba"; with every task present the divisor is 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..data.prompts import IGNORE_INDEX
from .target_head import TokenScores, sum_by_task

Weighting = Literal["token_mean", "data_balanced", "coba"]


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

    def rows(self) -> torch.Tensor:
        """(4, K) float32 on the CPU, detached: loss, tokens, correct, entropy; one tensor, so a step's
        sums over micro-batches and processes take one addition and one all-reduce."""
        return torch.stack([self.loss_sum.detach().float().cpu(), self.token_count.float().cpu(),
                            self.correct.float().cpu(), self.entropy_sum.detach().float().cpu()])


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

    token_loss = F.cross_entropy(valid_logits.float(), targets, reduction="none")  # (N,)
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


def task_stats(scores: TokenScores, num_tasks: int) -> TaskStats:
    """Per-task sums of one batch's target-token scores (losses/target_head.py): loss = −log p summed by
    task with the graph of `scores.logp`; counts, argmax hits and entropy (0 when not computed)."""
    task, device = scores.task, scores.logp.device
    if task.numel() and (int(task.min()) < 0 or int(task.max()) >= num_tasks):
        raise ValueError(f"task ids of target tokens must be in [0, {num_tasks})")
    zeros = torch.zeros(num_tasks, dtype=torch.float32, device=device)
    loss_sum = sum_by_task(-scores.logp, task, num_tasks)  # (K,)
    count = torch.bincount(task, minlength=num_tasks)
    correct = torch.zeros(num_tasks, dtype=torch.long, device=device).index_add(0, task, scores.hits.long())
    entropy = zeros.clone() if scores.entropy is None else zeros.index_add(0, task, scores.entropy.detach())
    return TaskStats(loss_sum, count, correct, entropy)


def task_weights(weighting: Weighting, counts: torch.Tensor, coba_weights: torch.Tensor | None = None) -> torch.Tensor:
    """w_i (K,) of `weighted_task_loss` from the normalising set's per-task target counts N_i (K,)
    (see the module docstring); `coba_weights` (K,): CoBa's ω in task-id order, for ``coba``.
    Tasks without tokens get 0; with no token at all every weight is 0."""
    present = counts > 0
    if weighting == "token_mean":
        return counts / counts.sum().clamp(min=1)
    if weighting == "data_balanced":
        return present.float() / present.sum().clamp(min=1)
    if weighting == "coba":
        if coba_weights is None:
            raise ValueError("task_weights('coba') needs CoBa's weights")
        w = coba_weights.to(torch.float32) * present
        return w / w.sum().clamp(min=torch.finfo(w.dtype).tiny)
    raise ValueError(f"unknown task-loss weighting {weighting!r} (token_mean, data_balanced, coba)")


def weighted_task_loss(stats: TaskStats, weights: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_i w_i · loss_sum_i / N_i; N_i = `counts` (K,), the normalising set's target tokens per task
    (default: this batch's own). A scalar with the graph of `stats.loss_sum` (0 without tokens)."""
    counts = stats.token_count if counts is None else counts
    return (weights.to(stats.loss_sum) * stats.loss_sum / counts.clamp(min=1).to(stats.loss_sum)).sum()
