"""Attention computed in float32 inside a bf16/fp16 autocast run: the faster choice on the CPUs measured here.

Under CPU autocast, `scaled_dot_product_attention` runs in bf16, and CPU's bf16 flash-attention kernels
(above all the backward) are slower than its fp32 ones, while the projections around them are faster in bf16.
docs/train_speed.md has the measurement (SmolLM2-135M, 2-core AMD EPYC) behind the default
(`speed.attention: auto` = float32 on CPU, the autocast dtype on GPUs, where bf16 kernels win).

How: the attention modules of `model` get a private shallow copy of their config whose attention
implementation is a registered function that runs transformers' own SDPA on float32 query/key/value with
autocast off, and returns the output in the dtype it would have had without autocast. The decoder's config
is untouched, so the causal mask is built as for SDPA. Only models loaded with `sdpa` change (an `eager`
or flash model is left as it is); DAGG's attention capture wraps whatever kernel a module has, this one
included. The change is on this model object only: nothing is saved with it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..modules.layers import find_decoder_layers

FP32_SDPA = "mftpp_sdpa_fp32"


def _sdpa_fp32(module: nn.Module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dtype = torch.promote_types(query.dtype, value.dtype)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
    return out.to(dtype), weights


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(FP32_SDPA, _sdpa_fp32)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention module of each decoder layer (those dispatching through config._attn_implementation)."""
    found = []
    for layer in find_decoder_layers(model):
        for m in layer.modules():
            if "attention" in type(m).__name__.lower() and hasattr(getattr(m, "config", None), "_attn_implementation"):
                found.append(m)
                break
    return found


def attention_in_fp32(model: nn.Module) -> int:
    """Switch every SDPA attention module of `model` to the float32 kernel; returns how many changed."""
    _register()
    changed = 0
    for attn in attention_modules(model):
        if attn.config._attn_implementation != "sdpa":
            continue
        cfg = copy.copy(attn.config)
        cfg.__dict__["_attn_implementation_internal"] = FP32_SDPA  # this module only; no sub-config recursion
        attn.config = cfg
        changed += 1
    return changed
