"""The training objective of one micro-batch: task loss plus the MFTCoder++ terms (Eq. 11).

    L = Σ_i w_i L_task^(i) + λ1 L_DAGG + λ2 L_adv + λ3 L_align (+ λ_dec L_decoupling)

The task term is per-task token cross-entropy weighted by `losses.tokens` and normalised by the
optimizer step's *global* per-task token counts (see loop.py); the auxiliary terms (train/terms.py)
are per-micro-batch means, so the loop scales them by 1/grad_accum. With every module off this is
plain multitask SFT and costs one forward.

`forward` is the one way a batch goes through the model (HMD-Fusion routes each row by its
language), shared by training and the per-task dev losses. On the fast path (train/fastpath.py) the
model returns its final hidden states instead of logits, the LM head and cross-entropy run on the target
positions only (`token_scores`), and the layers below the lowest trained one come from the frozen
prefix; every term reads the same per-target-token log-probabilities (the focal term included), and
DAGG and TIAR get the attention maps and hidden states of the layers that run.
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..losses.target_head import TokenScores, logits_scores, target_scores
from ..losses.tokens import TaskStats, task_stats, weighted_task_loss
from ..modules.hmd_fusion import hmd_layers, language_routing
from .batching import Batch, TrainExample
from .config import ModulesConfig
from .fastpath import FastPath
from .terms import Outputs, Step, build_terms


@dataclass
class ModelOut:
    """One forward: final hidden states (target-head path) or full logits (fallback), and the hidden states
    a term asked for."""

    hidden: torch.Tensor | None  # (B, T, H)
    logits: torch.Tensor | None  # (B, T, V)
    hidden_states: tuple[torch.Tensor, ...] | None


def forward(model, batch: Batch, *, hidden_states: bool = False, around: Sequence = (),
            fast: FastPath | None = None) -> ModelOut:
    """`batch` (already on the model's device) through the model, routed by language when the model has
    HMD-Fusion; `around`: context managers entered around the model's forward only. With `fast`, the
    model computes no logits (the caller scores target rows with its head) and skips the frozen prefix."""
    layers = hmd_layers(model)
    routing = nullcontext()
    if layers:
        langs = layers[0].hmd_cfg.languages  # every language has a branch, trained or not
        ids = torch.tensor([langs.index(lang) for lang in batch.languages], device=batch.input_ids.device)
        routing = language_routing(model, ids, batch.attention_mask)
    inputs = batch.model_inputs()
    trunk = fast.trunk if fast is not None else None
    prefix = fast.prefix if fast is not None and batch.attention_mask.dim() == 2 else None
    with routing, ExitStack() as stack:
        if prefix is not None:  # the bottom layers' output (B, T, H), then the model from layer k on
            inputs = {**inputs, "input_ids": None, "inputs_embeds": prefix.states(batch.input_ids, batch.attention_mask)}
            stack.enter_context(prefix.skipping())
        for cm in around:
            stack.enter_context(cm)
        if trunk is None:
            out = model(**inputs, output_hidden_states=hidden_states)
            return ModelOut(None, out.logits, out.hidden_states)
        stack.enter_context(trunk.capture())
        B, T = batch.input_ids.shape
        out = model(**inputs, **trunk.no_logits(B, T, batch.input_ids.device), output_hidden_states=hidden_states)
        return ModelOut(trunk.last(), None, out.hidden_states)


def token_scores(out: ModelOut, batch: Batch, fast: FastPath | None, with_entropy: bool) -> TokenScores:
    """Per-target-token log-probabilities (with graph), argmax hits and entropy of one forward."""
    if out.logits is not None:
        return logits_scores(out.logits, batch.labels, batch.token_task, with_entropy=with_entropy)
    return target_scores(fast.trunk.head, out.hidden, batch.labels, batch.token_task, chunk=fast.chunk,
                         with_entropy=with_entropy)


class Objective:
    def __init__(self, cfg: ModulesConfig, num_tasks: int, model, device, *, with_entropy: bool,
                 fast: FastPath | None = None):
        """`with_entropy`: also sum the predictive entropy per task (for the scheduler that reads it);
        `fast`: the run's fast paths (train/fastpath.py), None = the plain forward with full logits."""
        self.K, self.device, self.with_entropy, self.fast = num_tasks, device, with_entropy, fast
        self.terms = build_terms(cfg, model, num_tasks, device, lowest_trained=fast.lowest_trained if fast else 0)
        self.hidden_states = any(t.hidden_states for t in self.terms)

    def micro_loss(self, model, batch: Batch, step: Step, weights: torch.Tensor, counts: torch.Tensor,
                   autocast) -> tuple[torch.Tensor, torch.Tensor, TaskStats, dict[str, Any]]:
        """(task loss, weighted sum of the auxiliary terms, per-task stats, logged values) of one
        micro-batch; `weights` and `counts` (K,): the task weighting and the global token counts."""
        batch = batch.to(self.device)
        aux, logged = torch.zeros((), dtype=torch.float32, device=self.device), {}
        with autocast():
            model_out = forward(model, batch, hidden_states=self.hidden_states, fast=self.fast,
                                around=[t.around_forward(model, step) for t in self.terms])
            scores = token_scores(model_out, batch, self.fast, self.with_entropy)  # (N,) per target token
            stats = task_stats(scores, self.K)
            task_loss = weighted_task_loss(stats, weights, counts)
            outputs = Outputs(scores, model_out.hidden_states if self.hidden_states else None, task_loss)
            for term in self.terms:
                value, extra = term.loss(outputs, batch, step)
                if value is not None:
                    aux = aux + term.weight * value
                    logged[term.name] = float(value.detach())
                logged.update(extra)
        return task_loss, aux, stats, logged

    def after_step(self, step: int, accuracy: torch.Tensor, present: torch.Tensor,
                   gather: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
        """Each term's work after the optimizer step (TIAR's discriminator, the focal EMA); logged values."""
        logged: dict[str, Any] = {}
        for term in self.terms:
            logged.update(term.after_step(step, accuracy, present, gather))
        return logged

    def state_dict(self) -> dict:
        return {key: value for term in self.terms for key, value in term.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        for term in self.terms:
            term.load_state_dict(state)


@torch.no_grad()
def dev_losses(model, dev: dict[str, list[TrainExample]], tasks: list[str], collate, micro: int, device,
               autocast, fast: FastPath | None = None) -> dict[str, float]:
    """Per-task token-mean loss on the held-out dev examples (CoBa's validation signal)."""
    model.eval()
    result = {}
    for ti, t in enumerate(tasks):
        total = n = 0.0
        exs = dev[t]
        for s in range(0, len(exs), max(micro, 1)):
            batch = collate(exs[s:s + micro]).to(device)
            with autocast():
                st = task_stats(token_scores(forward(model, batch, fast=fast), batch, fast, False), len(tasks))
            total += float(st.loss_sum[ti])
            n += float(st.token_count[ti])
        result[t] = total / max(n, 1)
    model.train()
    return result
