"""The LM head and the cross-entropy on target positions only, a chunk of rows at a time.

Why: with a 49k vocabulary the LM head is a fifth of a small model's forward FLOPs, and the (B, T, V) float32
logits of a batch of 8 x 384 tokens take 600 MB (more with their copies, softmax and gradient). The loss needs
only the positions that predict a target (the response: about 40% of the positions of our SFT data). So the
model hands over its final hidden states (train/objective.py) and this module scores the target rows only,
`chunk` rows at a time: no more than (chunk, V) logits exist at any moment.

`TargetLogprobs` gives, per target token n, its log-probability log p_n (differentiable), whether the target is
the argmax, and the predictive entropy (both without gradient), in one pass over each chunk's logits. Token n's
log-probability depends only on its own hidden row h_n, so its gradient is one vector per row,

    ∂ log p_n / ∂h_n = (onehot(y_n) − softmax(z_n)) · W          z_n = W h_n (+ b)

computed in the forward pass while the logits are at hand and kept as (N, H); the backward multiplies it by
the incoming per-token gradient. So any function of the per-token log-probabilities (the task loss with any
task weighting, the focal term, DAGG's saliency, which back-propagates twice) reuses the one pass: nothing is
recomputed and no (N, V) tensor outlives its chunk. This is the idea of Liger-Kernel's fused linear
cross-entropy (gradients computed in the forward) without tying it to one reduction; TRL 1.16's chunked head
instead recomputes every tile in the backward and, on CPU, scores every position, targets or not.

That precomputation needs a frozen head (LoRA, HMD-Fusion: the tied embedding does not train). A head whose
weight trains (full fine-tuning) or that is not a plain linear layer (PEFT's trainable-token wrapper, LoRA on
the head) goes through `module_logprobs`: the module itself, called chunk by chunk under activation
checkpointing (its logits recomputed in the backward); also exact.

Precision follows the model's: under autocast the logits come from a matmul in the autocast dtype and are
upcast to float32 before the softmax, as the full-logits loss did; without autocast everything is float32.
Labels are unshifted (Hugging Face convention): position t's hidden state predicts labels[t + 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..data.prompts import IGNORE_INDEX

DEFAULT_CHUNK = 128  # target rows per chunk: (128, 49152) float32 logits = 25 MB, in a 32 MB L3


@dataclass
class TokenScores:
    """Per target token of a batch (N target tokens, in row-major order of their positions)."""

    logp: torch.Tensor  # (N,) float32, log-probability of the target, differentiable
    hits: torch.Tensor  # (N,) bool, target == argmax
    entropy: torch.Tensor | None  # (N,) float32, predictive entropy in nats, detached (None: not asked for)
    task: torch.Tensor  # (N,) int64 task id of each token


def target_rows(hidden: torch.Tensor, labels: torch.Tensor, token_task: torch.Tensor,
                ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hidden rows that predict a target: hidden (B, T, H), labels (B, T) unshifted, token_task (B, T) ->
    (rows (N, H) with graph, targets (N,), task of each target (N,)); the token at t + 1 is accounted to
    token_task[:, t + 1] (packed rows mix samples)."""
    shifted = labels[:, 1:].to(hidden.device)  # (B, T-1)
    mask = shifted != ignore_index
    return hidden[:, :-1][mask], shifted[mask], token_task[:, 1:].to(hidden.device)[mask].long()


class TargetLogprobs(torch.autograd.Function):
    """(log p (N,), hits (N,), entropy (N,) or empty) of `targets` under a frozen linear head; see the module
    docstring. hidden (N, H), weight (V, H), bias (V,) or None, targets (N,)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int, with_entropy: bool, compute_dtype: torch.dtype):
        ctx.set_materialize_grads(False)
        n_rows = hidden.shape[0]
        keep_grad = ctx.needs_input_grad[0]
        logp = torch.empty(n_rows, dtype=torch.float32, device=hidden.device)
        hits = torch.empty(n_rows, dtype=torch.bool, device=hidden.device)
        entropy = torch.empty(n_rows if with_entropy else 0, dtype=torch.float32, device=hidden.device)
        grad_rows = torch.empty_like(hidden) if keep_grad else None  # (N, H): ∂ log p_n / ∂h_n
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)  # (V, H), cast once for every chunk and the gradient
            b = None if bias is None else bias.to(compute_dtype)
            for s in range(0, n_rows, chunk):
                e = min(s + chunk, n_rows)
                t = targets[s:e]
                z = F.linear(hidden[s:e].to(compute_dtype), w, b).float()  # (n, V)
                hits[s:e] = z.argmax(dim=-1) == t
                z = torch.log_softmax(z, dim=-1)  # (n, V) log-probabilities (CPU's logsumexp is far slower)
                logp[s:e] = z.gather(-1, t[:, None]).squeeze(-1)
                if not (with_entropy or keep_grad):
                    continue
                p = z.exp()  # (n, V)
                if with_entropy:
                    entropy[s:e] = -_rowdot(p, z)
                if keep_grad:
                    g = p.neg_()  # onehot(y) - softmax(z):
                    g.view(-1).index_add_(0, t + torch.arange(e - s, device=g.device) * g.shape[1],
                                          torch.ones(e - s, dtype=g.dtype, device=g.device))
                    grad_rows[s:e] = (g.to(compute_dtype) @ w).to(hidden.dtype)  # (n, H)
        if keep_grad:
            ctx.save_for_backward(grad_rows)
        ctx.mark_non_differentiable(hits, entropy)
        return logp, hits, entropy

    @staticmethod
    def backward(ctx, grad_logp, *_):
        if grad_logp is None:
            return (None,) * 7
        (grad_rows,) = ctx.saved_tensors
        return grad_rows * grad_logp[:, None].to(grad_rows.dtype), None, None, None, None, None, None


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ_v a[n, v]·b[n, v] in float32 (autocast would run vecdot in bf16)."""
    with torch.autocast(a.device.type, enabled=False):
        return torch.linalg.vecdot(a, b)


def _compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else dtype


def plain_linear(head: torch.nn.Module) -> bool:
    """Whether `TargetLogprobs` may stand in for `head`: a frozen linear layer, not wrapped or overridden."""
    frozen = not any(p.requires_grad for p in head.parameters())
    return isinstance(head, torch.nn.Linear) and type(head).forward is torch.nn.Linear.forward and frozen


def _chunk_scores(module: torch.nn.Module, rows: torch.Tensor, targets: torch.Tensor, with_entropy: bool):
    z = module(rows).float()  # (n, V)
    with torch.no_grad():
        hits = z.argmax(dim=-1) == targets
    z = torch.log_softmax(z, dim=-1)
    logp = z.gather(-1, targets[:, None]).squeeze(-1)
    with torch.no_grad():
        ent = -_rowdot(z.exp(), z) if with_entropy else z.new_zeros(0)
    return logp, hits, ent


def module_logprobs(head: torch.nn.Module, rows: torch.Tensor, targets: torch.Tensor, chunk: int,
                    with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same outputs as `TargetLogprobs` for any head module (trainable, wrapped): the module is called on
    `chunk` rows at a time, under non-reentrant activation checkpointing when a gradient is needed."""
    parts = []
    grad = torch.is_grad_enabled() and (rows.requires_grad or any(p.requires_grad for p in head.parameters()))
    for s in range(0, rows.shape[0], chunk):
        args = (head, rows[s:s + chunk], targets[s:s + chunk], with_entropy)
        parts.append(checkpoint(_chunk_scores, *args, use_reentrant=False) if grad else _chunk_scores(*args))
    if not parts:
        empty = rows.new_zeros(0, dtype=torch.float32) + rows.sum() * 0.0  # keeps the graph
        return empty, torch.zeros(0, dtype=torch.bool, device=rows.device), rows.new_zeros(0, dtype=torch.float32)
    logp, hits, ent = (torch.cat(x) for x in zip(*parts))
    return logp, hits, ent


def target_scores(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, token_task: torch.Tensor, *,
                  chunk: int = DEFAULT_CHUNK, with_entropy: bool = False,
                  ignore_index: int = IGNORE_INDEX) -> TokenScores:
    """Per-target-token scores of a batch from the final hidden states (B, T, H) and the LM head module.
    With no target at all the log-probabilities are an empty tensor still attached to `hidden`, so a
    backward through them works (and gives zeros)."""
    rows, targets, task = target_rows(hidden, labels, token_task, ignore_index)  # (N, H), (N,), (N,)
    if rows.shape[0] and plain_linear(head):
        logp, hits, ent = TargetLogprobs.apply(rows, head.weight, head.bias, targets, chunk, with_entropy,
                                               _compute_dtype(rows.device, rows.dtype))
    else:
        logp, hits, ent = module_logprobs(head, rows, targets, chunk, with_entropy)
    if logp.numel() == 0:
        logp = logp + hidden.sum() * 0.0
    return TokenScores(logp, hits, ent if with_entropy else None, task)


def logits_scores(logits: torch.Tensor, labels: torch.Tensor, token_task: torch.Tensor, *, with_entropy: bool = False,
                  ignore_index: int = IGNORE_INDEX) -> TokenScores:
    """The same scores from full logits (B, T, V): the path for models whose head this module does not
    reproduce (logit soft-capping or scaling), and the reference the tests compare against."""
    shifted = labels[:, 1:].to(logits.device)
    mask = shifted != ignore_index
    z = logits[:, :-1][mask].float()  # (N, V)
    targets = shifted[mask]
    task = token_task[:, 1:].to(logits.device)[mask].long()
    if z.shape[0] == 0:
        empty = logits.sum() * 0.0 + torch.zeros(0, device=logits.device)
        return TokenScores(empty, torch.zeros(0, dtype=torch.bool, device=logits.device),
                           torch.zeros(0, device=logits.device) if with_entropy else None, task)
    with torch.no_grad():
        hits = z.argmax(dim=-1) == targets
    z = torch.log_softmax(z, dim=-1)
    logp = z.gather(-1, targets[:, None]).squeeze(-1)
    with torch.no_grad():
        ent = -_rowdot(z.exp(), z) if with_entropy else None
    return TokenScores(logp, hits, ent, task)


def sum_by_task(values: torch.Tensor, task: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Per-task sums (K,) of per-target-token values (N,), in the values' graph; with no target tokens
    the zeros still hang on that graph, so backward() works and gives zero gradients."""
    sums = values.new_zeros(num_tasks).index_add(0, task, values)
    return sums + values.sum() * 0.0 if task.numel() == 0 else sums
