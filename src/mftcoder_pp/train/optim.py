"""Optimizers and the learning-rate schedule.

Per-task optimizers (docs/design.md): one Adam state per task over the same trainable parameters, so a
task's moment estimates are not polluted by other tasks' gradients; each task has its own rate in
`lr_range`, higher for smaller tasks (log-size interpolation: the smallest task gets the top of the
range, the largest the bottom). One shared optimizer is the ablation.
The schedule is a pure function of the global step: linear warmup over `warmup_fraction` of the
steps, then linear decay to 0; a per-task optimizer also warms up over its own first steps
(`task_warmup`), because a task drawn for the first time at step 40 would otherwise start at full rate.
"""

from __future__ import annotations

import math

import torch


def lr_multiplier(step: int, total: int, warmup_fraction: float) -> float:
    """Factor on the base rate at optimizer step `step` (0-based) of `total`."""
    warmup = max(1, math.ceil(total * warmup_fraction)) if warmup_fraction > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def task_warmup(steps_taken: int, warmup_steps: int) -> float:
    """Factor on a per-task optimizer's rate for its next step: (k + 1) / N over its own first N steps."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (steps_taken + 1) / warmup_steps)


def per_task_rates(sizes: dict[str, int], low: float, high: float) -> dict[str, float]:
    """Rates in [low, high], higher for smaller tasks (interpolated in log size)."""
    logs = {t: math.log(max(n, 1)) for t, n in sizes.items()}
    lo, hi = min(logs.values()), max(logs.values())
    if hi == lo:
        return {t: high for t in sizes}
    return {t: high - (high - low) * (v - lo) / (hi - lo) for t, v in logs.items()}


def build_optimizers(params: list[torch.nn.Parameter], rates: dict[str, float], *, weight_decay: float,
                     betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
    """One AdamW per key of `rates` (a single key "shared" for the shared optimizer)."""
    return {key: torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
            for key, lr in rates.items()}


def set_rate(opt: torch.optim.Optimizer, base: float, multiplier: float) -> float:
    lr = base * multiplier
    for group in opt.param_groups:
        group["lr"] = lr
    return lr
