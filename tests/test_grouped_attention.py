"""Attention of guess-verifying decoding steps on the key/value heads (generation/grouped.py)."""

import types

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from mftcoder_pp.generation.grouped import NAME, grouped_attention, grouped_sdpa

GQA = types.SimpleNamespace(num_key_value_groups=3)


def _inputs(q: int, b: int = 4, kv: int = 37):
    gen = torch.Generator().manual_seed(q)
    cache_k, cache_v = torch.randn(b, 2, 64, 16, generator=gen), torch.randn(b, 2, 64, 16, generator=gen)
    query = torch.randn(b, q, 6, 16, generator=gen).transpose(1, 2)  # (b, heads, q, dim), as the model makes it
    pos = torch.randint(kv - 10, kv - q + 1, (b, 1), generator=gen) + torch.arange(q)
    mask = (torch.arange(kv)[None, None, :] <= pos[:, :, None])[:, None]  # (b, 1, q, kv): each row its own length
    return query, cache_k[:, :, :kv], cache_v[:, :, :kv], mask


def test_grouped_equals_transformers_sdpa_with_repeated_heads():
    query, key, value, mask = _inputs(q=4)
    ours, _ = grouped_sdpa(GQA, query, key, value, mask, scaling=0.25)
    ref, _ = sdpa_attention_forward(GQA, query, key, value, mask, scaling=0.25)
    assert ours.shape == ref.shape == (4, 4, 6, 16)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_one_token_steps_and_other_masks_go_to_transformers():
    query, key, value, mask = _inputs(q=1)
    ours, _ = grouped_sdpa(GQA, query, key, value, mask, scaling=0.25)
    assert torch.equal(ours, sdpa_attention_forward(GQA, query, key, value, mask, scaling=0.25)[0])
    query, key, value, _ = _inputs(q=3)
    causal, _ = grouped_sdpa(GQA, query, key[:, :, :3], value[:, :, :3], None, scaling=0.25)  # a prefill: no mask
    assert torch.equal(causal, sdpa_attention_forward(GQA, query, key[:, :, :3], value[:, :, :3], None, scaling=0.25)[0])


def test_grouped_attention_is_set_for_sdpa_only_and_undone():
    cfg = types.SimpleNamespace(_attn_implementation="sdpa")
    with grouped_attention(cfg) as on:
        assert on and cfg._attn_implementation == NAME
    assert cfg._attn_implementation == "sdpa"
    eager = types.SimpleNamespace(_attn_implementation="eager")
    with grouped_attention(eager) as on:
        assert not on and eager._attn_implementation == "eager"
