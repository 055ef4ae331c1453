"""Linear layers with prepacked weights for decoding on a CPU.

Why: on the CPU, PyTorch runs a float32 `nn.Linear` through MKL's sgemm, which is slow for the few
rows of a decoding step (one token per slot): its time for 4 rows is twice its time for one. oneDNN
can reorder a weight once into the blocked layout its kernels read and then multiply by it
directly. Measured on the 2-CPU development machine, one thread, float32: SmolLM2's
1536x576 projections 0.30 ms against 0.42 ms at 16 rows, its 49152x576 output head 10.7 ms against
24.6 ms, and a whole HumanEval run at batch 16 18 % less CPU time, with the same 64 completions
(docs/generate.md).

`packed_linears(model)` gives every plain `nn.Linear` of the model (adapters' included) a packed copy
of its weight and a forward that uses it, for the duration of the block; afterwards the modules are
as before. The copies cost the linear weights' memory once more, so it is only done on the CPU, in
float32 or bfloat16, and when that memory is available.
"""

from __future__ import annotations

import contextlib
import os
import types
from typing import Iterator

import torch


def _available_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


class Packed:
    """The packed linears of one `packed_linears` block (truthy when the model's linears are packed).

    `only(index, total)`: within it, a linear layer given the (b, q) tokens of a decoding step
    (`total` = b * q) computes only the rows `index` of its flattened input, the step's real tokens,
    and gives zeros for the others: the padding of rows that feed fewer tokens than the step's
    longest (guesses, lookahead.py) then costs no matrix product, only its share of attention."""

    def __init__(self):
        self.linears: list[torch.nn.Linear] = []
        self.index: torch.Tensor | None = None
        self.total = 0

    def __bool__(self) -> bool:
        return bool(self.linears)

    @contextlib.contextmanager
    def only(self, index: torch.Tensor | None, total: int) -> Iterator[None]:
        self.index, self.total = (index, total) if self.linears else (None, 0)
        try:
            yield
        finally:
            self.index, self.total = None, 0

    def forward_for(self, weight: torch.Tensor, bias: torch.Tensor | None):
        """The forward of a linear layer whose packed weight is `weight`."""
        def forward(module, x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, x.shape[-1])
            index = self.index
            if index is None or flat.shape[0] != self.total:
                y = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
            else:
                part = torch.ops.mkldnn._linear_pointwise(flat.index_select(0, index), weight, bias, "none", [], "")
                y = part.new_zeros(flat.shape[0], part.shape[-1]).index_copy_(0, index, part)
            return y.reshape(*x.shape[:-1], y.shape[-1])
        return forward


def linears(model) -> list[torch.nn.Linear]:
    """The plain `nn.Linear` modules that can be packed (CPU, float32/bfloat16 weights)."""
    return [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.device.type == "cpu"
            and m.weight.dtype in (torch.float32, torch.bfloat16)]


def can_pack(model) -> bool:
    mods = linears(model)
    if not mods or not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return False
    needed = sum(m.weight.numel() * m.weight.element_size() for m in mods)
    return 2 * needed < _available_bytes()


@contextlib.contextmanager
def packed_linears(model, rows_hint: int = 16) -> Iterator[Packed]:
    """Within the block the model's linear layers use prepacked weights (the handle is falsy if not)."""
    mods = [m for m in linears(model) if "forward" not in vars(m)] if can_pack(model) else []  # not packed yet
    packed = Packed()
    try:
        for m in mods:
            w = torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), rows_hint)
            b = None if m.bias is None else m.bias.detach()
            m.forward = types.MethodType(packed.forward_for(w, b), m)
            packed.linears.append(m)
        yield packed
    finally:
        for m in packed.linears:
            del m.forward  # back to nn.Linear.forward
