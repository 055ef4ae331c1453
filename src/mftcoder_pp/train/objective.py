"""The training objective of one micro-batch: task loss plus the MFTCoder++ terms (Eq. 11).

    L = Σ_i w_i L_task^(i) + λ1 L_DAGG + λ2 L_adv + λ3 L_align (+ λ_dec L_decoupling)

The task term is per-task token cross-entropy weighted by `losses.tokens` and normalised by the
optimizer step's *global* per-task token counts (see loop.py); the auxiliary terms (train/terms.py)
are per-micro-batch means, so the loop scales them by 1/grad_accum. With every module off this is
plain multitask SFT and costs one forward.

`forward` is the one way a batch goes through the model (HMD-Fusion routes each row by its
language), shared by training and the per-task dev losses.
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from typing import Any, Callable, Sequence

import torch

from ..losses.tokens import TaskStats, per_task_token_losses, weighted_task_loss
from ..modules.hmd_fusion import hmd_layers, language_routing
from .batching import Batch, TrainExample
from .config import ModulesConfig
from .terms import Outputs, Step, build_terms


def forward(model, batch: Batch, *, hidden_states: bool = False, around: Sequence = ()):
    """The model's outputs for `batch` (already on the model's device), routed by language when the
    model has HMD-Fusion; `around`: context managers entered around the forward only."""
    layers = hmd_layers(model)
    routing = nullcontext()
    if layers:
        langs = layers[0].hmd_cfg.languages  # every language has a branch, trained or not
        ids = torch.tensor([langs.index(lang) for lang in batch.languages], device=batch.input_ids.device)
        routing = language_routing(model, ids, batch.attention_mask)
    with routing, ExitStack() as stack:
        for cm in around:
            stack.enter_context(cm)
        return model(**batch.model_inputs(), output_hidden_states=hidden_states)


class Objective:
    def __init__(self, cfg: ModulesConfig, num_tasks: int, model, device, *, with_entropy: bool):
        """`with_entropy`: also sum the predictive entropy per task (an extra pass over the logits, for
        the scheduler that reads it)."""
        self.K, self.device, self.with_entropy = num_tasks, device, with_entropy
        self.terms = build_terms(cfg, model, num_tasks, device)
        self.hidden_states = any(t.hidden_states for t in self.terms)

    def micro_loss(self, model, batch: Batch, step: Step, weights: torch.Tensor, counts: torch.Tensor,
                   autocast) -> tuple[torch.Tensor, torch.Tensor, TaskStats, dict[str, Any]]:
        """(task loss, weighted sum of the auxiliary terms, per-task stats, logged values) of one
        micro-batch; `weights` and `counts` (K,): the task weighting and the global token counts."""
        batch = batch.to(self.device)
        aux, logged = torch.zeros((), dtype=torch.float32, device=self.device), {}
        with autocast():
            model_out = forward(model, batch, hidden_states=self.hidden_states,
                                around=[t.around_forward(model, step) for t in self.terms])
            logits = model_out.logits  # (B, T, V)
            stats = per_task_token_losses(logits, batch.labels, batch.token_task, self.K,
                                          with_entropy=self.with_entropy)
            task_loss = weighted_task_loss(stats, weights, counts)
            outputs = Outputs(logits, model_out.hidden_states if self.hidden_states else None, task_loss)
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
               autocast) -> dict[str, float]:
    """Per-task token-mean loss on the held-out dev examples (CoBa's validation signal)."""
    model.eval()
    result = {}
    for ti, t in enumerate(tasks):
        total = n = 0.0
        exs = dev[t]
        for s in range(0, len(exs), max(micro, 1)):
            batch = collate(exs[s:s + micro]).to(device)
            with autocast():
                logits = forward(model, batch).logits  # (B, T, V)
            st = per_task_token_losses(logits, batch.labels, batch.token_task, len(tasks), with_entropy=False)
            total += float(st.loss_sum[ti])
            n += float(st.token_count[ti])
        result[t] = total / max(n, 1)
    model.train()
    return result
