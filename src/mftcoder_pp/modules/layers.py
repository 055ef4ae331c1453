"""Finding a causal LM's decoder-layer list, through PEFT wrappers: the one lookup the modules that hook
or wrap layers (HMD-Fusion, DAGG's attention capture) and the exporter share, so they agree on which
list is "the layers"."""

from __future__ import annotations

import torch.nn as nn

LAYER_LIST_NAMES = ("layers", "h", "blocks")


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The longest non-empty ModuleList named layers/h/blocks (or ending in "layers"); the list itself,
    so callers can replace entries in place. ValueError naming the model's class when there is none."""
    best: nn.ModuleList | None = None
    for name, mod in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(mod, nn.ModuleList) and len(mod) and (last.endswith("layers") or last in LAYER_LIST_NAMES):
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise ValueError(f"no decoder layer list ({'/'.join(LAYER_LIST_NAMES)}) in {type(model).__name__}")
    return best
