"""LoRA dropout with cheaper masks on CPU: the same Bernoulli distribution, other random draws.

PEFT gives each adapted projection an `nn.Dropout` on the input of its A matrix: with LoRA on q/k/v/o/gate/
up/down of a 576-wide model that is ~5,000 random numbers per token and layer, and `torch.bernoulli_` costs
about 6 ns each on the CPUs measured here, 15% of a training step (docs/train_speed.md). `FastDropout` draws
`torch.rand(...) >= p` instead (float32 uniforms: p is exact to 2^-24), turned in place into the scaled
mask {0, 1/(1-p)} that multiplies the input, as `nn.Dropout` scales; the backward multiplies the gradient by
the same mask, kept as booleans (1 byte per element, as `nn.Dropout` keeps it). Forward and backward
together cost about half of `nn.Dropout`'s.

The masks are different draws from the same distribution, so a run's losses differ from PEFT's dropout
like two seeds do, and are reproducible for a given seed (the draws come from torch's generator, whose
state checkpoints save). `speed.lora_dropout: torch` keeps PEFT's own modules.
"""

from __future__ import annotations

import torch
from torch import nn


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        scale = 1.0 / (1.0 - p)
        mask = torch.rand(x.shape, dtype=torch.float32, device=x.device).ge_(p).mul_(scale)  # {0, 1/(1-p)}
        ctx.save_for_backward(mask.bool())
        ctx.scale = scale
        return x * mask.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep.to(grad.dtype).mul_(ctx.scale), None


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return _Dropout.apply(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_lora_dropout(model: nn.Module) -> int:
    """Replace the `nn.Dropout` of every PEFT LoRA layer of `model` by `FastDropout`; returns how many."""
    changed = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, nn.ModuleDict):
            continue
        for name, drop in list(drops.items()):
            if type(drop) is nn.Dropout and drop.p > 0:
                drops[name] = FastDropout(drop.p)
                changed += 1
    return changed
