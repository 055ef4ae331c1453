"""The model calls of the continuous decoder: prefill prompts into slots, decode one token per slot.

Kept apart from the scheduling (scheduler.py) and the loop (engine.py) so that what touches the
model is in one place:

- `prefill` runs a batch of prompts (all but their last token) right-padded, with no attention mask,
  through the model and a fresh DynamicCache. Right padding leaves every real token's positions and
  causal attention exactly as for the prompt alone (padding comes after it), so the model's own
  causal prefill runs (SDPA's `is_causal` path); the padded positions are garbage that the decoding
  mask hides. The keys/values are then copied into the rows' slots.
- `decode` runs the rows of slots 0..b-1 for one token each, or q each when rows verify guesses
  (lookahead.py): input (b, q), each row at its own positions (position_ids), attention over the
  slot cache with a per-row mask (kvcache.py).

A prompt's last token is not prefilled: it is the first decoding input of its row, so a new row
costs nothing more than its prefill (no logits are computed in the prefill), and rows whose prompt
is already in another slot (the n samples of a task) copy it and skip the prefill.

The model is called as a whole (a PEFT wrapper included), so adapters injected into its layers run;
HMD-Fusion routing is set by the caller around the run.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from transformers import DynamicCache

from .kvcache import SlotCache


def hf_model(model):
    """The transformers model inside PEFT wrappers."""
    while hasattr(model, "get_base_model"):
        inner = model.get_base_model()
        if inner is model:
            break
        model = inner
    return model


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def cache_kwarg(model) -> str:
    """The name under which this transformers version takes a cache (`cache` since 5.2x, before `past_key_values`)."""
    return "cache" if "cache" in inspect.signature(hf_model(model).forward).parameters else "past_key_values"


class Stepper:
    def __init__(self, model, slots: int, capacity: int):
        self.model = model
        inner = hf_model(model)
        self.config = inner.config
        self.device = model_device(model)
        self.kw = cache_kwarg(model)
        params = inspect.signature(inner.forward).parameters
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache = SlotCache(self.config.num_hidden_layers, slots, capacity)

    def prefill(self, slots: Sequence[int], prompts: Sequence[Sequence[int]], pad_id: int,
                max_tokens: int = 0) -> None:
        """Fill `slots` with the keys/values of `prompts` (token ids without the prompt's last token;
        each non-empty). Equal prompts are computed once. Prompts go through the model in chunks of at
        most `max_tokens` padded tokens (0: all at once; a chunk holds at least one prompt)."""
        unique: dict[tuple[int, ...], list[int]] = {}  # prompt -> its slots
        for s, p in zip(slots, prompts):
            unique.setdefault(tuple(p), []).append(s)
        chunks: list[list[tuple[int, ...]]] = []
        for p in unique:
            last = chunks[-1] if chunks else None
            if last is not None and (not max_tokens or (len(last) + 1) * max(len(p), *map(len, last)) <= max_tokens):
                last.append(p)
            else:
                chunks.append([p])
        for group in chunks:
            width = max(len(p) for p in group)
            ids = torch.full((len(group), width), pad_id, dtype=torch.long)
            for i, p in enumerate(group):
                ids[i, :len(p)] = torch.tensor(p, dtype=torch.long)
            cache = DynamicCache(config=self.config)
            self.model(input_ids=ids.to(self.device), use_cache=True, **self.extra, **{self.kw: cache})
            dst = [(s, i) for i, p in enumerate(group) for s in unique[p]]
            self.cache.write([s for s, _ in dst], [(layer.keys, layer.values) for layer in cache.layers],
                             [i for _, i in dst])

    def decode(self, tokens: Sequence[Sequence[int]], positions: Sequence[int]) -> torch.Tensor:
        """One step for the rows in slots 0..b-1: row i feeds tokens[i] (q tokens each: its next input,
        then any guesses to verify) from position positions[i] on -> logits (b, q, V)."""
        b, q = len(tokens), len(tokens[0])
        ids = torch.tensor([list(t) for t in tokens], dtype=torch.long, device=self.device)  # (b, q)
        pos = torch.tensor(list(positions), dtype=torch.long, device=self.device)[:, None] + torch.arange(
            q, device=self.device)  # (b, q)
        mask = self.cache.start_step(pos)  # (b, 1, q, kv_len)
        extra = {"logits_to_keep": q} if self.extra else {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **extra,
                         **{self.kw: self.cache})
        return out.logits[:, -q:]
