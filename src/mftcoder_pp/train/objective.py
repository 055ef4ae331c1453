"""The training objective of one micro-batch: task loss plus the MFTCoder++ terms (Eq. 11).

    L = Σ_i w_i L_task^(i) + λ1 L_DAGG + λ2 L_adv + λ3 L_align (+ λ_dec L_decoupling)

Each module is switched by the config (modules.*); with all off this is plain multitask SFT and
costs one forward. The task term is normalised by the global token counts (see loop.py); the
auxiliary terms are per-micro-batch means, so the loop scales them by 1/grad_accum.
The discriminator (TIAR) trains after the model's optimizer step on a buffer of recent pooled prompt
states (one task per step would otherwise show it a single class at a time), gathered over processes
so every process's copy stays identical.
"""

from __future__ import annotations

from collections import deque
from contextlib import nullcontext

import torch

from ..data.prompts import IGNORE_INDEX
from ..execution.languages import LANGUAGES
from ..losses.balance import TaskStats, per_task_token_losses
from ..losses.focal import TaskAccuracyEMA, focal_alignment_loss, mean_target_prob
from ..modules.dagg import DAGG
from ..modules.hmd_fusion import HMDConfig, apply_hmd, hmd_aux, language_routing
from ..modules.tiar import TIAR, pool_prompt
from .config import ModulesConfig

HMD_LANGUAGES = list(LANGUAGES)  # every language routes, trained or not


class Objective:
    def __init__(self, cfg: ModulesConfig, num_tasks: int, model, device):
        self.cfg, self.K, self.device = cfg, num_tasks, device
        if cfg.hmd.enabled:  # after PEFT: get_peft_model would freeze the branches
            apply_hmd(model, HMDConfig(languages=HMD_LANGUAGES, top_layers=cfg.hmd.top_layers, rank=cfg.hmd.rank,
                                       decoupling=cfg.hmd.decoupling))
        hidden = model.config.hidden_size
        t = cfg.tiar
        self.tiar = TIAR(hidden, num_tasks, width=t.width, lr=t.lr, mode=t.mode, period=t.period,
                         device=device) if t.enabled else None
        self.buffer: deque = deque(maxlen=t.buffer)
        self.dagg = (DAGG(dagg_layers(cfg.dagg.layers, model), cfg.dagg.lam, cfg.dagg.every)
                     if cfg.dagg.enabled else None)
        self.ema = TaskAccuracyEMA(num_tasks, cfg.focal.ema) if cfg.focal.enabled else None
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def micro_loss(self, model, inputs: dict, step: int, task_loss_fn, probs: torch.Tensor,
                   autocast, with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor, TaskStats, dict]:
        """(task loss, auxiliary loss, stats, logged terms) of one micro-batch; the predictive
        entropy (an extra pass over the logits) only when a scheduler reads it."""
        cfg, dev = self.cfg, self.device
        ids, mask = inputs["input_ids"].to(dev), inputs["attention_mask"].to(dev)
        labels, token_task = inputs["labels"].to(dev), inputs["token_task"].to(dev)
        extra = {"position_ids": inputs["position_ids"].to(dev)} if "position_ids" in inputs else {}
        terms: dict[str, float] = {}
        routing = nullcontext()
        if cfg.hmd.enabled:
            lang_ids = torch.tensor([HMD_LANGUAGES.index(lang) for lang in inputs["languages"]], device=dev)
            routing = language_routing(model, lang_ids, mask)
        dagg_on = self.dagg is not None and self.dagg.active(step)
        with routing, autocast():
            with (self.dagg.capture(model) if dagg_on else nullcontext()) as cap:
                out = model(input_ids=ids, attention_mask=mask, output_hidden_states=self.tiar is not None, **extra)
            logits = out.logits  # (B, T, V)
            stats = per_task_token_losses(logits, labels, token_task, self.K, with_entropy=with_entropy)
            task_loss = task_loss_fn(stats)
            aux = logits.new_zeros((), dtype=torch.float32)
            if dagg_on:
                l_dagg = self.dagg.loss(task_loss, cap, labels != IGNORE_INDEX, mask.bool())
                aux = aux + cfg.dagg.weight * l_dagg
                terms["dagg"] = float(l_dagg.detach())
            if self.tiar is not None:
                task_ids = inputs["task_ids"].to(dev)
                prompt = mask.bool() & (labels == IGNORE_INDEX)  # (B, T): prompt tokens
                pooled = pool_prompt(out.hidden_states[cfg.tiar.layer], prompt)  # (B, H)
                self._pending.append((pooled.detach().float(), task_ids))
                if self.tiar.schedule.adversarial_active(step):
                    l_adv, acc = self.tiar.model_term(pooled.float(), task_ids)
                    aux = aux + cfg.tiar.weight * l_adv
                    terms.update(adv=float(l_adv.detach()), tiar_accuracy=acc)
            if self.ema is not None:
                p, present = mean_target_prob(logits, labels, inputs["task_ids"].to(dev), self.K)
                l_align = focal_alignment_loss(p, self.ema.value.to(dev), probs.to(dev), present, cfg.focal.beta)
                aux = aux + cfg.focal.weight * l_align
                terms["align"] = float(l_align.detach())
            if cfg.hmd.enabled:
                info = hmd_aux(model)
                if info["decoupling"] is not None:
                    aux = aux + cfg.hmd.decoupling_weight * info["decoupling"]
                    terms["decoupling"] = float(info["decoupling"].detach())
                terms["gate"] = info["gate_mean"]
        return task_loss, aux, stats, terms

    def after_step(self, step: int, acc_obj, accuracy: torch.Tensor, present: torch.Tensor) -> dict:
        """Discriminator step (TIAR's D phases) and the focal EMA update; returns logged values."""
        logged: dict = {}
        if self.ema is not None:
            self.ema.update_present(accuracy, present)
        if self.tiar is None:
            return logged
        pooled = torch.cat([p for p, _ in self._pending])
        tasks = torch.cat([t for _, t in self._pending])
        self._pending.clear()
        if acc_obj.num_processes > 1:
            pooled, tasks = acc_obj.gather(pooled), acc_obj.gather(tasks)
        self.buffer.extend(zip(pooled.cpu(), tasks.cpu()))
        if self.tiar.schedule.train_discriminator(step):
            xs = torch.stack([x for x, _ in self.buffer]).to(self.device)
            ys = torch.stack([y for _, y in self.buffer]).to(self.device)
            for _ in range(self.cfg.tiar.discriminator_steps):
                d = self.tiar.discriminator_step(xs, ys)
            logged.update(discriminator_loss=d["loss"], discriminator_accuracy=d["acc"])
        return logged

    def state_dict(self) -> dict:
        return {"tiar": self.tiar.state_dict() if self.tiar else None,
                "buffer": [(x, int(y)) for x, y in self.buffer],
                "ema": self.ema.state_dict() if self.ema else None}

    def load_state_dict(self, state: dict) -> None:
        if self.tiar is not None:
            self.tiar.load_state_dict(state["tiar"])
            self.buffer.clear()
            self.buffer.extend((x, torch.tensor(y)) for x, y in state["buffer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def dagg_layers(layers: list[int] | None, model) -> list[int]:
    """The configured DAGG layers, or the two middle decoder layers (one for a one-layer model)."""
    if layers is not None:
        return list(layers)
    n = model.config.num_hidden_layers
    return [n // 2] if n < 2 else [n // 2 - 1, n // 2]


def token_mean(counts: torch.Tensor, weights: torch.Tensor):
    """Σ_i w_i · loss_sum_i / N_i with the step's global per-task token counts N_i."""
    def fn(stats: TaskStats) -> torch.Tensor:
        return (weights.to(stats.loss_sum) * stats.loss_sum / counts.clamp(min=1).to(stats.loss_sum)).sum()
    return fn
