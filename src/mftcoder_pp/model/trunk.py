"""The model's final hidden states without its logits: what the target-only LM head (losses/target_head.py)
starts from.

A Hugging Face causal LM computes logits for every position it is given. Training needs them only where a
target is predicted, so the training forward asks for none (`logits_to_keep` = an all-False (B, T) mask:
the head runs on zero rows) and a forward hook on the decoder keeps its output, the final normed hidden
states (B, T, H). The call still goes through the top-level model, so PEFT, HMD-Fusion's wrappers,
Accelerate's autocast wrapper and DDP's gradient bookkeeping see an ordinary forward.

Models this cannot serve say why (`Trunk.reason`) and the caller falls back to full logits: a forward
without `logits_to_keep`, or a head that soft-caps or scales its logits (Gemma 2/3, Cohere, Granite, ...),
which the target-only head does not reproduce.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterator

import torch
from torch import nn

# Config attributes of heads that transform the logits after the matmul (TRL's fused head reads the same).
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                    "logits_scaling")


def base_model(model: nn.Module) -> nn.Module:
    """The causal LM under a PEFT wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class Trunk:
    """The decoder and LM head of `model` (unwrapped: PEFT allowed, not DDP), and whether the hidden-state
    path works for it (`reason` is None) or why not."""

    def __init__(self, model: nn.Module):
        base = base_model(model)
        self.decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
        self.head = base.get_output_embeddings()
        self.reason = _unsupported(base, self.decoder, self.head)
        self._last: torch.Tensor | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def no_logits(self, batch_size: int, length: int, device) -> dict:
        """The keyword argument that makes the model compute logits for no position."""
        return {"logits_to_keep": torch.zeros(batch_size, length, dtype=torch.bool, device=device)}

    @contextlib.contextmanager
    def capture(self) -> Iterator["Trunk"]:
        """Keep the decoder's final hidden states of the one forward run inside the block (`last()`)."""
        def hook(module, args, output):
            self._last = output[0] if isinstance(output, (tuple, list)) else output.last_hidden_state

        handle = self.decoder.register_forward_hook(hook)
        self._last = None
        try:
            yield self
        finally:
            handle.remove()

    def last(self) -> torch.Tensor:
        """(B, T, H) final hidden states of the captured forward; handed over once."""
        if self._last is None:
            raise RuntimeError("no decoder output was captured: run the model's forward inside `capture()`")
        out, self._last = self._last, None
        return out


def _unsupported(base: nn.Module, decoder, head) -> str | None:
    if decoder is None or head is None:
        return f"{type(base).__name__} has no get_decoder()/get_output_embeddings()"
    if "logits_to_keep" not in inspect.signature(type(base).forward).parameters:
        return f"{type(base).__name__}.forward takes no logits_to_keep"
    conf = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    scaled = [a for a in LOGIT_TRANSFORMS if getattr(conf, a, None) not in (None, 1.0)]
    if scaled:
        return f"{type(base).__name__} transforms its logits ({', '.join(scaled)})"
    return None
