"""The smaller fast paths: LoRA dropout masks from torch.rand (model/dropout.py), float32 attention inside
bf16 autocast (model/attention.py), and the `speed` config section."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mftcoder_pp.config import ConfigError, from_dict
from mftcoder_pp.model.attention import attention_in_fp32
from mftcoder_pp.model.dropout import FastDropout, use_fast_lora_dropout
from mftcoder_pp.train.config import SpeedConfig


def test_fast_dropout_is_dropout():
    torch.manual_seed(0)
    drop = FastDropout(0.1)
    x = torch.ones(1_000_000, requires_grad=True)
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 5 * (0.09 / 1e6) ** 0.5  # five standard deviations
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient is the same mask and scale
    torch.manual_seed(0)
    assert torch.equal(FastDropout(0.1)(torch.ones(1_000_000)), y.detach())  # reproducible from the seed
    drop.eval()
    assert drop(x) is x
    assert FastDropout(0.0)(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


def test_peft_dropout_replaced():
    from peft import LoraConfig, get_peft_model

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    model = get_peft_model(model, LoraConfig(r=2, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]))
    assert use_fast_lora_dropout(model) == 4
    assert sum(isinstance(m, FastDropout) for m in model.modules()) == 4
    assert use_fast_lora_dropout(model) == 0


def test_fp32_attention_same_in_fp32_and_closer_under_bf16():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (2, 9))
    ref32 = model(input_ids=ids).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref16 = model(input_ids=ids).logits.float()
    assert attention_in_fp32(model) == 2
    assert model.config._attn_implementation == "sdpa"  # the decoder's mask is still built for sdpa
    torch.testing.assert_close(model(input_ids=ids).logits, ref32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got16 = model(input_ids=ids).logits.float()
    assert (got16 - ref32).abs().max() <= (ref16 - ref32).abs().max() * 1.5


def test_speed_settings_are_checked_by_name():
    assert SpeedConfig().attention == "auto"
    with pytest.raises(ConfigError, match="attention"):
        from_dict(SpeedConfig, {"attention": "fp16"})
    with pytest.raises((ConfigError, ValueError), match="speed.head_chunk"):
        from_dict(SpeedConfig, {"head_chunk": 0})
    with pytest.raises(ConfigError, match="prefix_cach"):
        from_dict(SpeedConfig, {"prefix_caches": True})
