"""Finding a causal LM's decoder-layer list, through PEFT wrappers: shared by the modules that hook or
wrap layers (HMD-Fusion, DAGG)."""

from __future__ import annotations

import torch.nn as nn

LAYER_LIST_NAMES = ("layers", "h", "blocks")


def find_decoder_layers(model: nn.Module, who: str = "") -> tuple[str, nn.ModuleList]:
    """(name, list): the longest non-empty ModuleList named layers/h/blocks (or ending in "layers")."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, mod in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(mod, nn.ModuleList) and len(mod) and (last.endswith("layers") or last in LAYER_LIST_NAMES):
            if best is None or len(mod) > len(best[1]):
                best = (name, mod)
    if best is None:
        prefix = f"{who}: " if who else ""
        raise ValueError(f"{prefix}no decoder layer list ({'/'.join(LAYER_LIST_NAMES)}) in {type(model).__name__}")
    return best
