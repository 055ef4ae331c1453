"""adapter.lora.layers: LoRA on some decoder layers only ("LoRA(6L)" = the top six)."""

import pytest
import torch
from conftest import TINY

from mftcoder_pp.config import ConfigError, from_dict
from mftcoder_pp.model.load import load_tokenizer
from mftcoder_pp.train.config import TrainConfig
from mftcoder_pp.train.setup import build_model


def _sections(tmp_path, layers) -> dict:
    return {"out": str(tmp_path / "o"), "data": {"prepared": ["p"]}, "model": {"tokenizer": "t", "tiny": TINY},
            "adapter": {"kind": "lora", "vocabulary_adapters": False, "lora": {"rank": 4, "alpha": 8, "layers": layers}}}


def test_top_k_layers_only_and_backward_stops_below(tiny_workspace, tmp_path):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    n = TINY["num_layers"]
    model, report = build_model(from_dict(TrainConfig, _sections(tmp_path, 1)), tok)
    adapted = {int(name.split("layers.")[1].split(".")[0]) for name, p in model.named_parameters()
               if p.requires_grad and "lora_" in name}
    assert adapted == {n - 1}
    _, everywhere = build_model(from_dict(TrainConfig, _sections(tmp_path, None)), tok)
    assert report.trainable_params * n == everywhere.trainable_params
    _, listed = build_model(from_dict(TrainConfig, _sections(tmp_path, [0])), tok)
    assert listed.trainable_params == report.trainable_params
    # Nothing below the adapted layer requires grad, so autograd never runs the bottom layers' backward.
    grads = []
    bottom = model.base_model.model.model.layers[0]
    bottom.register_full_backward_hook(lambda *a: grads.append("bottom"))
    ids = torch.tensor([[1, 2, 3, 4]])
    model(input_ids=ids, labels=ids).loss.backward()
    assert grads == []
    top = model.base_model.model.model.layers[n - 1]
    assert all(p.grad is not None for p in top.parameters() if p.requires_grad)


def test_bad_layer_selections_are_named(tiny_workspace, tmp_path):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    n = TINY["num_layers"]
    with pytest.raises(ValueError, match=f"adapter.lora.layers: {n + 1} top layers asked for.*has {n}"):
        build_model(from_dict(TrainConfig, _sections(tmp_path, n + 1)), tok)
    with pytest.raises(ValueError, match=r"indices \[9\] out of range"):
        build_model(from_dict(TrainConfig, _sections(tmp_path, [0, 9])), tok)
    for bad in (0, [], [-1], "top", True):
        with pytest.raises((ConfigError, ValueError), match="lora.layers"):
            from_dict(TrainConfig, _sections(tmp_path, bad))
