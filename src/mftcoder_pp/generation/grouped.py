"""Attention of a decoding step that verifies guesses, on the key/value heads.

Why: for a step of one token per row, transformers' SDPA path folds the query heads that share a
key/value head into the query axis and attends on the key/value heads themselves. For q > 1 tokens
per row with a mask (rows that verify guesses, lookahead.py) it instead repeats every cached key and
value once per query head (`repeat_kv`): for SmolLM2 (9 query heads on 3 key/value heads) three
copies of the slots' whole cache in every layer of every such step, about as much time as the
tokens' own matrix products. Here the same fold is done for q tokens: query heads (b, h, q, d) ->
(b, kv_heads, h/kv_heads * q, d), the (b, 1, q, kv) mask repeated along the query axis, one SDPA call
on the key/value heads, the output unfolded. Each query row sees the same keys, values and mask as
before. Everything else (prefill, one-token steps, other masks) goes to transformers' own SDPA.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "mftpp_grouped_sdpa"


def grouped_sdpa(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                 is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    groups = getattr(module, "num_key_value_groups", 1)
    b, heads, q, dim = query.shape
    if (groups == 1 or q == 1 or attention_mask is None or attention_mask.dtype != torch.bool
            or attention_mask.dim() != 4 or attention_mask.shape[1] != 1 or dropout or kwargs.get("position_bias") is not None
            or kwargs.get("softcap") is not None or key.shape[1] * groups != heads):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    folded = query.reshape(b, key.shape[1], groups * q, dim)  # row r*q + t: head g*groups + r, token t
    mask = attention_mask.expand(b, 1, q, attention_mask.shape[-1]).repeat(1, 1, groups, 1)
    out = torch.nn.functional.scaled_dot_product_attention(folded, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(b, heads, q, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, grouped_sdpa)


@contextlib.contextmanager
def grouped_attention(config) -> Iterator[bool]:
    """Within the block a model on transformers' SDPA attends with `grouped_sdpa` (yields whether it does)."""
    before = getattr(config, "_attn_implementation", None)
    if before != "sdpa":
        yield False
        return
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = before
