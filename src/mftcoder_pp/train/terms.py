"""The auxiliary terms of the objective (Eq. 11), each behind one small interface.

The modules (modules/, losses/focal.py) are maths on tensors and models; a `Term` adapts one of them
to a training step: what it needs around the forward, its value on a micro-batch, what it does after
the optimizer step, and its checkpointed state. `Objective` only sums `weight · value`; adding a term
means writing one class here and listing it in `build_terms`.

Order matters and is fixed by `build_terms` (DAGG, TIAR, focal, HMD): the float sum of the terms and
the order of the keys in metrics.jsonl follow it.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import torch

from ..losses.focal import TaskAccuracyEMA, focal_alignment_loss, mean_target_prob_tokens
from ..losses.target_head import TokenScores
from ..modules.dagg import DAGG
from ..modules.hmd_fusion import hmd_aux, hmd_layers
from ..modules.layers import find_decoder_layers
from ..modules.tiar import TIAR, pool_prompt
from .batching import Batch
from .config import ModulesConfig


@dataclass
class Step:
    """What a term may read about the optimizer step a micro-batch belongs to."""

    index: int  # optimizer step, 0-based
    task_probs: torch.Tensor  # (K,) the tasks' current sampling probabilities (the focal term's α_i)


@dataclass
class Outputs:
    """One micro-batch's forward, as the terms see it."""

    scores: TokenScores  # per target token: log-probability (with graph), hit, entropy, task
    hidden_states: tuple[torch.Tensor, ...] | None  # embeddings + one per layer, when a term asked
    task_loss: torch.Tensor  # the weighted task term, with graph (DAGG's saliency differentiates it)


class Term(Protocol):
    """One auxiliary term of the objective; `Objective` adds `weight · value` of each."""

    name: str  # the key its value is logged under (metrics.jsonl), and its λ in ModulesConfig.term_weights
    weight: float
    hidden_states: bool  # needs the model's hidden states

    def around_forward(self, model, step: Step) -> ContextManager:
        """Entered around the model's forward (DAGG: the attention capture)."""

    def loss(self, out: Outputs, batch: Batch, step: Step) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """(unweighted value, or None when the term is off this step; other values to log)."""

    def after_step(self, step: int, accuracy: torch.Tensor, present: torch.Tensor,
                   gather: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
        """After the optimizer step, with the step's per-task accuracy (K,) and presence (K,) over every
        process; `gather` concatenates a tensor over processes. Returns values to log."""

    def state_dict(self) -> dict:
        """This term's entries of the checkpoint's objective state, under keys of its own (TIAR: "tiar",
        "buffer"; focal: "ema"), beside the other terms'; tensors allowed."""

    def load_state_dict(self, state: dict) -> None:
        ...


class _TermBase:
    """No work around the forward or after the step, no state: what a term does not override."""

    hidden_states = False

    def around_forward(self, model, step: Step) -> ContextManager:
        return nullcontext()

    def after_step(self, step, accuracy, present, gather) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class DAGGTerm(_TermBase):
    """λ1 · L_DAGG on its active steps; the capture runs only then (no cost on the others)."""

    name = "dagg"

    def __init__(self, dagg: DAGG, weight: float):
        self.dagg, self.weight = dagg, weight
        self._capture = None

    @contextmanager
    def around_forward(self, model, step: Step):
        if not self.dagg.active(step.index):
            self._capture = None
            yield
            return
        with self.dagg.capture(model) as cap:
            self._capture = cap
            yield

    def loss(self, out, batch, step):
        cap, self._capture = self._capture, None  # the records hold the forward's graph: one use
        if cap is None:
            return None, {}
        return self.dagg.loss(out.task_loss, cap, batch.response_mask, batch.attention_mask.bool()), {}


class TIARTerm(_TermBase):
    """λ2 · L_adv in the model phases; the discriminator trains after the optimizer step in its phases on
    a buffer of recent pooled prompt states (one task per step would otherwise show it a single class
    at a time), gathered over processes so every process's copy stays identical."""

    name = "adv"
    hidden_states = True

    def __init__(self, tiar: TIAR, weight: float, layer: int, buffer: int, discriminator_steps: int, device):
        self.tiar, self.weight, self.layer, self.device = tiar, weight, layer, device
        self.discriminator_steps = discriminator_steps
        self.buffer: deque = deque(maxlen=buffer)
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # this step's (pooled, task ids)

    def loss(self, out, batch, step):
        pooled = pool_prompt(out.hidden_states[self.layer], batch.prompt_mask)  # (B, H)
        self._pending.append((pooled.detach().float(), batch.task_ids))
        if not self.tiar.schedule.adversarial_active(step.index):
            return None, {}
        l_adv, acc = self.tiar.model_term(pooled.float(), batch.task_ids)
        return l_adv, {"tiar_accuracy": acc}

    def after_step(self, step, accuracy, present, gather):
        pooled = torch.cat([p for p, _ in self._pending])
        tasks = torch.cat([t for _, t in self._pending])
        self._pending.clear()
        pooled, tasks = gather(pooled), gather(tasks)
        self.buffer.extend(zip(pooled.cpu(), tasks.cpu()))
        if not self.tiar.schedule.train_discriminator(step):
            return {}
        xs = torch.stack([x for x, _ in self.buffer]).to(self.device)  # (N, H)
        ys = torch.stack([y for _, y in self.buffer]).to(self.device)  # (N,)
        for _ in range(self.discriminator_steps):
            d = self.tiar.discriminator_step(xs, ys)
        return {"discriminator_loss": d["loss"], "discriminator_accuracy": d["acc"]}

    def state_dict(self) -> dict:
        return {"tiar": self.tiar.state_dict(), "buffer": [(x, int(y)) for x, y in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        self.tiar.load_state_dict(state["tiar"])
        self.buffer.clear()
        self.buffer.extend((x, torch.tensor(y)) for x, y in state["buffer"])


class FocalTerm(_TermBase):
    """λ3 · L_align; the accuracy EMA it reads is updated after each optimizer step."""

    name = "align"

    def __init__(self, num_tasks: int, beta: float, ema: float, weight: float):
        self.K, self.beta, self.weight = num_tasks, beta, weight
        self.ema = TaskAccuracyEMA(num_tasks, ema)

    def loss(self, out, batch, step):
        # The task cross-entropy's own per-token log-probabilities: no second pass over the LM head.
        p, present = mean_target_prob_tokens(out.scores.logp, out.scores.task, self.K)  # (K,), (K,)
        dev = p.device
        return focal_alignment_loss(p, self.ema.value.to(dev), step.task_probs.to(dev), present, beta=self.beta), {}

    def after_step(self, step, accuracy, present, gather):
        self.ema.update_present(accuracy, present)
        return {}

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])


class HMDTerm(_TermBase):
    """λ_dec · cos²(h_shared, h_lang) when the decoupling loss is on; logs the gates either way. The
    branches are part of the model (model/adapters.py); this reads what their last forward left."""

    name = "decoupling"

    def __init__(self, model, weight: float):
        self.model, self.weight = model, weight

    def loss(self, out, batch, step):
        info = hmd_aux(self.model)
        return info["decoupling"], {"gate": info["gate_mean"]}


def build_terms(cfg: ModulesConfig, model, num_tasks: int, device, lowest_trained: int = 0) -> list[Term]:
    """The enabled terms, in the order their values are summed and logged; `lowest_trained`: the lowest
    decoder layer that trains (DAGG's layers must not lie below it)."""
    weights = cfg.term_weights()
    terms: list[Term] = []
    if cfg.dagg.enabled:
        d = cfg.dagg
        layers = dagg_layers(d.layers, len(find_decoder_layers(model)), lowest_trained)
        terms.append(DAGGTerm(DAGG(layers, d.lam, d.every), weights["dagg"]))
    if cfg.tiar.enabled:
        t = cfg.tiar
        tiar = TIAR(model.config.hidden_size, num_tasks, width=t.width, lr=t.lr, mode=t.mode, period=t.period,
                    device=device)
        terms.append(TIARTerm(tiar, weights["adv"], t.layer, t.buffer, t.discriminator_steps, device))
    if cfg.focal.enabled:
        terms.append(FocalTerm(num_tasks, cfg.focal.beta, cfg.focal.ema, weights["align"]))
    if cfg.hmd.enabled:
        if not hmd_layers(model):
            raise ValueError("modules.hmd is enabled but the model has no HMD-Fusion layers (see model/adapters.py)")
        terms.append(HMDTerm(model, weights["decoupling"]))
    return terms


def dagg_layers(layers: list[int] | None, n: int, lowest_trained: int = 0) -> list[int]:
    """The configured DAGG layers of a model with `n` decoder layers, or the two middle layers of those that
    train (lowest_trained .. n-1; one for a one-layer span): below the lowest trained layer an attention
    map gets no gradient."""
    if layers is None:
        span = n - lowest_trained
        mid = lowest_trained + span // 2
        return [max(lowest_trained, n - 1)] if span < 2 else [mid - 1, mid]
    below = [i for i in layers if (i if i >= 0 else n + i) < lowest_trained]
    if below:
        raise ValueError(f"modules.dagg.layers: {below} lie below the lowest trained layer {lowest_trained}: their "
                         f"attention gets no gradient (pick layers >= {lowest_trained}, or train more layers)")
    return list(layers)
