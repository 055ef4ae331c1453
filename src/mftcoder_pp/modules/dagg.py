"""DAGG — Dual Attention Gradient Guidance (paper §3.2, Eq. 2/8).

As printed, ``‖∇_θ L_task^l − λ A_task^l − (1−λ) A_lang^l‖²`` subtracts attention maps from a
*parameter* gradient, which has no consistent shape. Reading used here (docs/design.md, "DAGG"):

* For each selected decoder layer l, a token saliency ``s^l = normalise(‖∂L_task/∂h^l_t‖_2)`` over the
  tokens t, where h^l is the layer's OUTPUT hidden state (B, T, H). It is DETACHED: a target, never
  differentiated through. It is computed with one first-order ``torch.autograd.grad(...,
  retain_graph=True, create_graph=False)`` (:func:`saliency_from_loss`): no double backward, and the
  caller can still call ``backward`` on the total loss afterwards.
* Attention distributions over KEY tokens, averaged over heads: ``A_task^l`` from the response-token
  queries, ``A_lang^l`` from all non-pad queries (:func:`attention_profile`).
* Normalisation: s^l, A_task^l and A_lang^l are each a distribution over the non-pad key tokens of a
  sample (sum to 1 over valid positions), so the three are comparable ("normalisation to avoid scale
  bias"). ``L = Σ_l mean_b Σ_t (s^l − λ A_task^l − (1−λ) A_lang^l)²_{b,t}``, λ = 0.6, the mean over
  the samples that have at least one response token (others have no A_task and are skipped).
  The gradient reaches the model only through the attention probabilities (queries/keys and below).

The attention probabilities come from :mod:`.attention_capture`, which intercepts the model's own
attention kernel on the selected layers only (logits unchanged).

Cost (amortised by :class:`DAGG` ``every``): one partial backward from the task loss down to the
lowest selected layer (for the saliency), plus one (B, heads, T, T) attention recomputation per
selected layer (twice: forward and checkpointed backward). On steps where ``DAGG.active(step)`` is
false the term is skipped entirely (no capture, no extra work): this is how the refresh interval
amortises the cost — the saliency is per batch, so a stale one cannot be reused on another batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention_capture import AttentionCapture, attention_profile, capture_attention


def token_saliency(grad: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Per-token L2 norm of ``grad`` (B, T, H), zeroed outside ``mask`` (B, T), normalised to sum 1
    over the valid tokens of each sample -> (B, T) float32, detached (a sample with zero gradient
    stays all-zero)."""
    norms = grad.detach().float().norm(dim=-1)  # (B, T)
    if mask is not None:
        norms = norms * mask.to(norms.device, norms.dtype)
    return norms / norms.sum(dim=-1, keepdim=True).clamp_min(eps)


def _layer_error(s: torch.Tensor, a_task: torch.Tensor, a_lang: torch.Tensor, key_mask: torch.Tensor,
                 sample_ok: torch.Tensor, lam: float) -> torch.Tensor:
    diff = s.to(a_task) - lam * a_task - (1.0 - lam) * a_lang  # (B, T)
    per_sample = (diff.pow(2) * key_mask.to(diff)).sum(dim=-1)  # (B,)
    w = sample_ok.to(per_sample)
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


def _masks(response_mask: torch.Tensor, attention_mask: torch.Tensor | None, device: torch.device):
    """-> key_mask (B, T) non-pad, task_q (B, T) response & non-pad, ok (B,) has a response token."""
    response_mask = response_mask.to(device).bool()
    key_mask = torch.ones_like(response_mask) if attention_mask is None else attention_mask.to(device).bool()
    task_q = response_mask & key_mask
    return key_mask, task_q, task_q.any(dim=-1)


def dagg_loss(
    saliencies: Sequence[torch.Tensor],
    attentions: Sequence[torch.Tensor],
    response_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    lam: float = 0.6,
) -> torch.Tensor:
    """``Σ_l mean_b ‖s^l − λ A_task^l − (1−λ) A_lang^l‖²`` from full attention maps.

    saliencies: per layer (B, T) (detached here regardless); attentions: per layer (B, heads, T, T);
    response_mask, attention_mask: (B, T). Samples without response tokens are skipped.
    """
    if len(saliencies) != len(attentions) or not saliencies:
        raise ValueError(f"need one saliency per attention map, got {len(saliencies)} and {len(attentions)}")
    key_mask, task_q, ok = _masks(response_mask, attention_mask, attentions[0].device)
    total = attentions[0].new_zeros((), dtype=torch.float32)
    for s, attn in zip(saliencies, attentions):
        a_task = attention_profile(attn.float(), task_q, key_mask)
        a_lang = attention_profile(attn.float(), key_mask, key_mask)
        total = total + _layer_error(s.detach(), a_task, a_lang, key_mask, ok, lam)
    return total


def saliency_from_loss(
    task_loss: torch.Tensor, hidden_states: Sequence[torch.Tensor], mask: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """First-order saliencies ``normalise(‖∂L/∂h^l‖)`` for each hidden state (B, T, H) -> list of (B, T).

    Uses ``torch.autograd.grad(..., retain_graph=True, create_graph=False)``: the results carry no
    graph, and ``task_loss`` can still be back-propagated afterwards.
    """
    for i, h in enumerate(hidden_states):
        if not h.requires_grad:
            raise RuntimeError(
                f"DAGG: hidden state #{i} does not require grad (no trainable parameter at or below that "
                "layer, or it was produced under no_grad / reentrant gradient checkpointing)"
            )
    grads = torch.autograd.grad(task_loss, list(hidden_states), retain_graph=True, create_graph=False,
                                allow_unused=True)
    out = []
    for i, (g, h) in enumerate(zip(grads, hidden_states)):
        if g is None:
            raise RuntimeError(f"DAGG: the task loss does not depend on hidden state #{i}")
        out.append(token_saliency(g, mask))
    return out


class DAGG:
    """The DAGG term for the training loop.

    ::

        if dagg.active(step):
            with dagg.capture(model) as cap:
                out = model(input_ids=..., attention_mask=..., position_ids=...)
            task_loss = ...                                   # from out.logits
            l_dagg = dagg.loss(task_loss, cap, response_mask, attention_mask)
            (task_loss + 0.3 * l_dagg).backward()
        else:                                                 # skipped: no capture, no extra cost
            out = model(...); task_loss = ...; task_loss.backward()

    ``response_mask`` (B, T) marks the response tokens (e.g. ``labels != -100``, unshifted); it selects
    the queries of A_task. ``attention_mask`` (B, T) marks non-pad tokens (keys and A_lang queries).
    """

    def __init__(self, layers: Sequence[int], lam: float, every: int, use_checkpoint: bool = True):
        if not layers:
            raise ValueError("DAGG needs at least one layer")
        if every < 1:
            raise ValueError(f"DAGG every must be >= 1, got {every}")
        self.layers, self.lam, self.every = list(layers), float(lam), int(every)
        self.use_checkpoint = use_checkpoint

    def active(self, step: int) -> bool:
        """True on steps 0, every, 2·every, ...; on the others the term is skipped entirely."""
        return int(step) % self.every == 0

    def capture(self, model: nn.Module):
        return capture_attention(model, self.layers)

    def loss(self, task_loss: torch.Tensor, cap: AttentionCapture, response_mask: torch.Tensor,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar DAGG loss; computes the (detached) saliencies first, keeping ``task_loss``'s graph."""
        hidden = [cap.hidden(j) for j in cap.layers]
        key_mask, task_q, ok = _masks(response_mask, attention_mask, hidden[0].device)
        sal = saliency_from_loss(task_loss, hidden, key_mask)
        total = hidden[0].new_zeros((), dtype=torch.float32)
        for j, s in zip(cap.layers, sal):
            a_task, a_lang = cap.profiles(j, [task_q, key_mask], key_mask, self.use_checkpoint)
            total = total + _layer_error(s, a_task, a_lang, key_mask, ok, self.lam)
        return total
