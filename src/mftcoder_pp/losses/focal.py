"""Cross-task focal alignment loss (paper §3.7.4, Eq. 10).

The paper writes ``L_align = -Σ_i α_i (1 - p̄_i)^β log(p̄_i)`` with p̄_i "the moving average of task
i's accuracy" — a moving average of accuracy is not differentiable, so as printed the loss has no
gradient. Reading used here (docs/design.md, "Focal task alignment"):

* the focal factor ``α_i (1 - p̄_i)^β`` uses the DETACHED exponential moving average p̄_i of task i's
  token accuracy (:class:`TaskAccuracyEMA`, starts at 0 so the early focal weight is high), β = 2, and
  α_i = task i's current sampling probability (ATDS's π as refreshed during training, or the fixed
  temperature prior, which `plain` mixing uses too; detached, a constant within the step);
* it multiplies ``-log p_i`` where p_i is the CURRENT micro-batch's mean target-token probability for
  task i (:func:`mean_target_prob`, differentiable w.r.t. the logits);
* the loss is the MEAN over the tasks present in the micro-batch (not the paper's sum), so its scale
  does not grow with the number of tasks a batch happens to contain; absent tasks contribute nothing.
  The trainer averages it over the step's micro-batches, like every auxiliary term (train/objective.py).

The EMA is fed the step's per-task token accuracy (argmax hits / target tokens, counted with the task
cross-entropy in losses/tokens.py), after the optimizer step.

In training, p_i comes from the per-target-token log-probabilities the task cross-entropy already
computed (:func:`mean_target_prob_tokens` on losses/target_head.py's `TokenScores.logp`): one pass over the
LM head serves both terms, and no logits-sized copy is made for this term. :func:`mean_target_prob` computes
the same from full logits (the reference the tests compare against): logits and labels UNSHIFTED, as
Hugging Face causal LMs produce/consume them (``labels[b, t]`` is the token at position t, -100 = ignored);
the shift happens inside :func:`target_logprobs`, as ``logit[target] - logsumexp(logits)`` upcast to float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..data.prompts import IGNORE_INDEX
from .target_head import sum_by_task


def target_logprobs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX):
    """Shifted per-token log-probability of the target token.

    logits (B, T, V), labels (B, T) unshifted -> (logp (B, T-1), valid (B, T-1) bool); logp is 0
    where invalid.
    """
    logits = logits[:, :-1, :]  # (B, T-1, V): position t predicts labels[:, t+1]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    target = labels[:, 1:].to(logits.device)  # (B, T-1)
    valid = target != ignore_index  # (B, T-1)
    safe = target.masked_fill(~valid, 0).long()
    tgt_logit = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    lse = torch.logsumexp(logits, dim=-1)  # (B, T-1)
    logp = (tgt_logit - lse).masked_fill(~valid, 0.0)
    return logp, valid


def task_mean(values: torch.Tensor, valid: torch.Tensor, task_ids: torch.Tensor, num_tasks: int):
    """Mean of per-token ``values`` (B, T') over the valid tokens of each task's samples.

    -> (mean (K,), present (K,) bool); mean is 0 for absent tasks (no valid token in the batch).
    """
    task_ids = task_ids.to(values.device).long()
    w = valid.to(values.dtype)  # (B, T')
    per_sample_sum = (values * w).sum(dim=1)  # (B,)
    per_sample_cnt = w.sum(dim=1)  # (B,)
    sums = values.new_zeros(num_tasks).index_add(0, task_ids, per_sample_sum)  # (K,)
    cnts = values.new_zeros(num_tasks).index_add(0, task_ids, per_sample_cnt)  # (K,)
    present = cnts > 0
    return sums / cnts.clamp_min(1.0), present


def mean_target_prob(
    logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor, num_tasks: int,
    ignore_index: int = IGNORE_INDEX,
):
    """p_i = mean over task i's target tokens of P(target), differentiable.

    logits (B, T, V) and labels (B, T) unshifted, task_ids (B,) -> (probs (K,), present (K,) bool).
    """
    logp, valid = target_logprobs(logits, labels, ignore_index)
    return task_mean(logp.exp(), valid, task_ids, num_tasks)


def mean_target_prob_tokens(token_logp: torch.Tensor, token_task: torch.Tensor, num_tasks: int):
    """p_i from per-target-token log-probabilities (N,) and their task ids (N,): the mean over task i's target
    tokens of P(target), differentiable -> (probs (K,), present (K,) bool); what :func:`mean_target_prob`
    computes from the logits, without them."""
    task = token_task.to(token_logp.device).long()
    sums = sum_by_task(token_logp.exp(), task, num_tasks)  # (K,)
    cnts = torch.bincount(task, minlength=num_tasks).to(sums.dtype)  # (K,)
    present = cnts > 0
    return sums / cnts.clamp_min(1.0), present


def focal_alignment_loss(
    p: torch.Tensor, ema_acc: torch.Tensor, alpha: torch.Tensor, present: torch.Tensor, *,
    beta: float, eps: float = 1e-8,
) -> torch.Tensor:
    """``mean_{i present} α_i (1 - p̄_i)^β · (-log p_i)``; α and p̄ are detached, p is not.

    p, ema_acc, alpha, present: (K,). Returns a scalar (0, still attached to ``p``, if no task is
    present).
    """
    p = p.float()
    ema = ema_acc.detach().to(p).clamp(0.0, 1.0)
    a = alpha.detach().to(p)
    present = present.to(p.device).bool()
    weight = a * (1.0 - ema) ** beta  # (K,)
    terms = -weight * torch.log(p.clamp_min(eps))  # (K,)
    if not bool(present.any()):
        return p.sum() * 0.0
    return terms[present].mean()


class TaskAccuracyEMA:
    """Per-task EMA of token accuracy: ``v_i <- decay·v_i + (1 - decay)·acc``, starting at 0.

    No bias correction on purpose: the low early value keeps the focal weight high at the start.
    """

    def __init__(self, num_tasks: int, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.num_tasks, self.decay = int(num_tasks), float(decay)
        self._value = torch.zeros(self.num_tasks, dtype=torch.float64)
        self.updates = torch.zeros(self.num_tasks, dtype=torch.long)

    @property
    def value(self) -> torch.Tensor:
        """(K,) float32 copy, detached."""
        return self._value.to(torch.float32)

    def update(self, task_ids: int | Sequence[int] | torch.Tensor, acc: float | Sequence[float] | torch.Tensor) -> None:
        """Fold one accuracy per given task id into its EMA (ids may repeat; applied in order)."""
        ids = torch.as_tensor(task_ids).detach().reshape(-1).long().cpu()
        vals = torch.as_tensor(acc, dtype=torch.float64).detach().reshape(-1).cpu()
        if vals.numel() == 1 and ids.numel() > 1:
            vals = vals.expand(ids.numel())
        if ids.numel() != vals.numel():
            raise ValueError(f"{ids.numel()} task ids but {vals.numel()} accuracy values")
        for i, v in zip(ids.tolist(), vals.tolist()):
            if not 0 <= i < self.num_tasks:
                raise IndexError(f"task id {i} out of range [0, {self.num_tasks})")
            self._value[i] = self.decay * self._value[i] + (1.0 - self.decay) * v
            self.updates[i] += 1

    def update_present(self, acc: torch.Tensor, present: torch.Tensor) -> None:
        """Fold in the tasks marked in ``present`` (K,) with their accuracy ``acc`` (K,)."""
        idx = present.detach().cpu().bool().nonzero().flatten()
        self.update(idx, acc.detach().cpu()[idx])

    def state_dict(self) -> dict[str, Any]:
        return {"value": self._value.tolist(), "updates": self.updates.tolist(),
                "decay": self.decay, "num_tasks": self.num_tasks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["num_tasks"]) != self.num_tasks:
            raise ValueError(f"EMA checkpoint has {state['num_tasks']} tasks, this run has {self.num_tasks}")
        self.decay = float(state["decay"])
        self._value = torch.tensor(state["value"], dtype=torch.float64)
        self.updates = torch.tensor(state["updates"], dtype=torch.long)
