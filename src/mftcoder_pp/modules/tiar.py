"""TIAR — Task Imbalance Adversarial Regulator (paper §3.3, Eq. 3/4/9).

Reading used here (docs/design.md, "TIAR"):

* The "encoder output" h = G(x) is a *pooled prompt state*: the mean, over the prompt tokens of each
  sample, of the hidden states of one chosen decoder layer (:func:`pool_prompt`). The caller picks the
  layer (e.g. ``output_hidden_states=True`` and ``hidden_states[k]``).
* The discriminator D is a 2-layer MLP with spectral normalisation on both linear maps
  (:class:`Discriminator`). It predicts the task id (a (task type, language) pair, numbered by the
  caller) with plain multi-class cross-entropy (:func:`discriminator_loss`). The paper's Eq. 3/4 is a
  one-vs-rest GAN objective ``log D(t_i|h) + log(1 - D(t_i|h'))``; with a softmax over all tasks the
  multi-class CE is the standard equivalent and is what is implemented.
* The model's adversarial term (:func:`adversarial_loss`), weighted by λ2 = 0.1 in the total loss, is
  one of two modes (config):

  - ``"uniform"`` (default): ``KL(U || D(.|h)) = -log K - (1/K) Σ_k log D(k|h)``, mean over the batch,
    i.e. the cross-entropy of D's prediction toward the uniform distribution over the K tasks minus
    its constant entropy ``log K``. It is exactly 0 when D predicts uniform and > 0 otherwise.
  - ``"reversal"``: a gradient-reversal layer (:class:`GradReverse`, scale λ) is applied to the pooled
    states before D, and the loss is the CE on the *true* task. Minimising the total loss then
    maximises D's loss w.r.t. the model (the reversed gradient), DANN-style.

* D and the model alternate every ``period`` = 5 steps (:class:`TIARSchedule`): steps
  ``[0, period)`` train D, ``[period, 2·period)`` train the model adversarially, and so on. During D
  phases the model still trains on its task loss (and every other term); only the adversarial term is
  off. During model phases D is frozen (no D update, no gradient into D's parameters).

D runs in float32 on detached pooled states for its own updates; :class:`TIAR` owns D and its own Adam
optimizer and checkpoints both (kill-and-resume reproduces the next step exactly).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

ADV_MODES = ("uniform", "reversal")


class Discriminator(nn.Module):
    """2-layer MLP ``H -> width -> K`` with spectral norm on both linears.

    ``normalize_input`` applies a parameter-free layer norm to the pooled state first, so D is
    insensitive to the (model-dependent, sometimes very large) scale of hidden states; it is
    differentiable, so adversarial gradients still reach the pooled states.
    """

    def __init__(self, hidden_size: int, num_tasks: int, width: int, normalize_input: bool = True):
        super().__init__()
        if num_tasks < 2:
            raise ValueError(f"TIAR needs at least 2 tasks, got {num_tasks}")
        self.hidden_size, self.num_tasks, self.width = hidden_size, num_tasks, width
        self.normalize_input = normalize_input
        self.fc1 = spectral_norm(nn.Linear(hidden_size, width))
        self.fc2 = spectral_norm(nn.Linear(width, num_tasks))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled.to(self.fc1.parametrizations.weight.original.dtype)  # (B, H)
        if self.normalize_input:
            x = F.layer_norm(x, (x.shape[-1],))
        return self.fc2(self.act(self.fc1(x)))  # (B, K) logits


class GradReverse(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``-scale`` on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.scale * grad_output, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return GradReverse.apply(x, scale)


def pool_prompt(hidden: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, H) over the positions where ``prompt_mask`` (B, T) is true -> (B, H).

    A sample with no prompt token pools to zeros (its count is clamped to 1).
    """
    m = prompt_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * m).sum(dim=1)  # (B, H)
    count = m.sum(dim=1).clamp_min(1.0)  # (B, 1)
    return total / count


def discriminator_loss(logits: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of D's logits (B, K) against the true task ids (B,); D minimises it."""
    return F.cross_entropy(logits.float(), task_ids.long())


def adversarial_loss(logits: torch.Tensor, mode: str = "uniform", task_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The model's adversarial term from D's logits (B, K).

    ``"uniform"``: batch mean of ``KL(U || softmax(logits))`` (0 at uniform, > 0 otherwise).
    ``"reversal"``: CE on the true ``task_ids``; the logits must come from gradient-reversed inputs
    (see :meth:`TIAR.model_term`) so that minimising it makes the model *maximise* D's loss.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, K)
    if mode == "uniform":
        k = logp.shape[-1]
        return (-math.log(k) - logp.mean(dim=-1)).mean()
    if mode == "reversal":
        if task_ids is None:
            raise ValueError("adversarial_loss(mode='reversal') needs task_ids")
        return F.nll_loss(logp, task_ids.long())
    raise ValueError(f"unknown TIAR adversarial mode {mode!r}; expected one of {ADV_MODES}")


@torch.no_grad()
def accuracy(logits: torch.Tensor, task_ids: torch.Tensor) -> float:
    """Share of samples whose argmax task equals the true task (chance is 1/K for balanced batches)."""
    if logits.shape[0] == 0:
        return float("nan")
    return (logits.argmax(dim=-1) == task_ids.to(logits.device)).float().mean().item()


class TIARSchedule:
    """Alternation of D and model phases, ``period`` steps each, starting with D.

    ``phase(step)``: steps ``[0, period)`` -> "discriminator", ``[period, 2·period)`` -> "model", ...
    In "discriminator" phases D is updated and the model's adversarial term is off (the model still
    trains on its task loss); in "model" phases D is frozen and the adversarial term is on.
    """

    def __init__(self, period: int):
        if period < 1:
            raise ValueError(f"TIAR period must be >= 1, got {period}")
        self.period = int(period)

    def phase(self, step: int) -> str:
        return "discriminator" if (int(step) // self.period) % 2 == 0 else "model"

    def train_discriminator(self, step: int) -> bool:
        return self.phase(step) == "discriminator"

    def adversarial_active(self, step: int) -> bool:
        return self.phase(step) == "model"


class TIAR:
    """Owns D, its Adam optimizer and the schedule.

    Per training step (the training loop's side)::

        pooled = pool_prompt(hidden_states[layer], prompt_mask)          # (B, H), with graph
        if tiar.schedule.train_discriminator(step):
            stats = tiar.discriminator_step(pooled.detach(), task_ids)  # updates D only
        else:
            l_adv, acc = tiar.model_term(pooled, task_ids)               # D frozen
            total = total + 0.1 * l_adv
    """

    def __init__(
        self,
        hidden_size: int,
        num_tasks: int,
        *,
        width: int,
        lr: float,
        mode: str,
        period: int,
        grl_scale: float = 1.0,
        normalize_input: bool = True,
        device: torch.device | str | None = None,
    ):
        if mode not in ADV_MODES:
            raise ValueError(f"unknown TIAR adversarial mode {mode!r}; expected one of {ADV_MODES}")
        self.mode, self.grl_scale, self.lr = mode, float(grl_scale), float(lr)
        self.discriminator = Discriminator(hidden_size, num_tasks, width, normalize_input).to(device)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr)
        self.schedule = TIARSchedule(period)

    @property
    def num_tasks(self) -> int:
        return self.discriminator.num_tasks

    def discriminator_step(self, pooled: torch.Tensor, task_ids: torch.Tensor) -> dict[str, float]:
        """One Adam step of D on (detached) pooled states; returns {"loss", "acc"} (acc before the step)."""
        d = self.discriminator
        d.train()  # spectral norm: one power iteration per forward in train mode
        self.optimizer.zero_grad(set_to_none=True)
        task_ids = task_ids.to(pooled.device)
        logits = d(pooled.detach())  # (B, K)
        loss = discriminator_loss(logits, task_ids)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "acc": accuracy(logits, task_ids)}

    def model_term(self, pooled: torch.Tensor, task_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """The adversarial loss for the model (gradient into ``pooled`` only) and D's accuracy on it.

        D is run in eval mode (spectral-norm vectors not updated) with its parameters excluded from the
        graph, so this never changes D's weights, buffers or gradients.
        """
        d = self.discriminator
        was_training = d.training
        d.eval()
        params = list(d.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            x = grad_reverse(pooled, self.grl_scale) if self.mode == "reversal" else pooled  # (B, H)
            logits = d(x)  # (B, K)
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
            d.train(was_training)
        if task_ids is not None:
            task_ids = task_ids.to(logits.device)
        loss = adversarial_loss(logits, self.mode, task_ids)
        acc = accuracy(logits, task_ids) if task_ids is not None else float("nan")
        return loss, acc

    def state_dict(self) -> dict[str, Any]:
        """D's weights (incl. spectral-norm vectors), its Adam state and the settings."""
        d = self.discriminator
        return {
            "discriminator": d.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": {
                "hidden_size": d.hidden_size,
                "num_tasks": d.num_tasks,
                "width": d.width,
                "normalize_input": d.normalize_input,
                "lr": self.lr,
                "mode": self.mode,
                "grl_scale": self.grl_scale,
                "period": self.schedule.period,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cfg = state.get("config", {})
        d = self.discriminator
        for key, have in (("hidden_size", d.hidden_size), ("num_tasks", d.num_tasks), ("width", d.width)):
            if key in cfg and cfg[key] != have:
                raise ValueError(f"TIAR checkpoint has {key}={cfg[key]}, this run has {have}")
        d.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
