"""The frozen prefix (model/prefix.py): the layers below the lowest trained one run per example without
autograd; the trained layers get the same gradients as with the plain forward, the cache (memory and
disk) gives the losses of the uncached run exactly, and what rules the prefix out is reported."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, train_config
from mftcoder_pp.cli import main
from mftcoder_pp.config import from_dict
from mftcoder_pp.model import prefix as prefix_mod
from mftcoder_pp.model.load import load_tokenizer
from mftcoder_pp.model.prefix import lowest_trained_layer, prefix_blocker
from mftcoder_pp.train.batching import collate_padded
from mftcoder_pp.train.config import TrainConfig
from mftcoder_pp.train.dataset import build_corpus
from mftcoder_pp.train.fastpath import build_fast_path
from mftcoder_pp.train.objective import Objective
from mftcoder_pp.train.setup import build_model
from mftcoder_pp.train.terms import Step

TINY4 = {**TINY, "num_layers": 4}


@pytest.fixture(autouse=True)
def one_thread():
    """Many short runs: one torch thread keeps them fast on a busy host (results do not depend on it here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sections(ws, out, *, layers=2, speed=None, vocab=False, **extra) -> dict:
    sections = {"out": str(out), "data": {"prepared": [str(ws["prepared"])], "max_length": 160},
                "model": {"tokenizer": str(ws["tokenizer"]), "tiny": TINY4},
                "adapter": {"kind": "lora", "vocabulary_adapters": vocab,
                            "lora": {"rank": 4, "alpha": 8, "dropout": 0.0, "layers": layers}},
                "mixing": {"strategy": "plain"},
                "optim": {"max_steps": 10, "batch_size": 16, "grad_accum": 2, "per_task": False, "lr": 1e-3},
                "checkpoint_every": 0, "tensorboard": False, "speed": speed or {}}
    sections.update(extra)
    return sections


def _train(ws, tmp_path, name, **kw) -> tuple[list[float], dict]:
    out = tmp_path / name
    assert main(["train", str(train_config(tmp_path / f"{name}.yaml", **_sections(ws, out, **kw))), "--quiet"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return losses, json.loads((out / "train_config.json").read_text())["speed"]


def test_lowest_trained_layer_and_blockers(tiny_workspace, tmp_path):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    for layers, vocab, want in ((2, False, 2), (1, False, 3), (None, False, 0), (2, True, 0), ([1, 3], False, 1)):
        model, _ = build_model(from_dict(TrainConfig, _sections(tiny_workspace, tmp_path, layers=layers, vocab=vocab)),
                               tok)
        assert lowest_trained_layer(model) == want, (layers, vocab)
    assert "every decoder layer trains" in prefix_blocker(model, 0)
    model.config.attention_dropout = 0.1
    assert "attention_dropout" in prefix_blocker(model, 2)


def test_frozen_prefix_gives_the_trained_layers_the_same_gradients(tiny_workspace, tmp_path):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    cfg = from_dict(TrainConfig, _sections(tiny_workspace, tmp_path, layers=2))
    corpus = build_corpus(cfg.data.prepared, tok, max_length=160, stage="sft")
    examples = [ex for t in corpus.tasks for ex in corpus.train[t][:3]]
    batch = collate_padded(examples, tok.pad_token_id)  # rows of different lengths: padding on most
    counts = torch.zeros(len(corpus.tasks))
    for ex in examples:
        counts[ex.task] += ex.n_targets
    results = []
    for prefix_on in (False, True):
        torch.manual_seed(0)
        model, _ = build_model(cfg, tok)
        fast = build_fast_path(cfg, model, cuda=False)
        if not prefix_on:
            fast.prefix = None
        else:
            assert fast.prefix is not None and fast.prefix.k == 2
        obj = Objective(cfg.modules, len(corpus.tasks), model, "cpu", with_entropy=False, fast=fast)
        loss, _, _, _ = obj.micro_loss(model, batch, Step(0, torch.zeros(3)), counts / counts.sum(), counts,
                                       lambda: torch.autocast("cpu", enabled=False))
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert grads and all(".layers.2." in n or ".layers.3." in n for n in grads)
        results.append((loss.detach(), grads))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-6, atol=1e-6)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-7, msg=name)


def test_cache_gives_the_uncached_losses_exactly(tiny_workspace, tmp_path, monkeypatch):
    """10 steps of 8 examples over 24 training examples (8 per task): more than three epochs, so later
    epochs hit the cache; the losses are bit-identical to the run that computes every prefix, and a second
    run with the same cache directory reads every state from disk."""
    computed = []
    original = prefix_mod.FrozenPrefix._compute
    monkeypatch.setattr(prefix_mod.FrozenPrefix, "_compute", lambda self, ids: computed.append(1) or original(self, ids))
    small = {"data": {"prepared": [str(tiny_workspace["prepared"])], "max_length": 160, "max_per_task": 8},
             "optim": {"max_steps": 10, "batch_size": 8, "per_task": False, "lr": 1e-3}}
    uncached, report = _train(tiny_workspace, tmp_path, "uncached", speed={"prefix_cache": False}, **small)
    assert report["frozen_prefix"] == "layers 0..1, cache off"
    assert len(computed) == 80
    computed.clear()
    cache_dir = tmp_path / "prefix_cache"
    first, report = _train(tiny_workspace, tmp_path, "disk1", speed={"prefix_cache_dir": str(cache_dir)}, **small)
    assert report["frozen_prefix"] == f"layers 0..1, cache in memory (2048 MB) and on disk ({cache_dir})"
    assert first == uncached
    assert len(computed) == 24  # each distinct example once
    assert len(list(cache_dir.rglob("*.safetensors"))) == 24
    computed.clear()
    second, _ = _train(tiny_workspace, tmp_path, "disk2", speed={"prefix_cache_dir": str(cache_dir)}, **small)
    assert second == uncached and computed == []


def test_modules_on_top_of_the_prefix_and_what_turns_it_off(tiny_workspace, tmp_path):
    modules = {"hmd": {"enabled": True, "top_layers": 2, "rank": 4}, "tiar": {"enabled": True, "period": 2},
               "dagg": {"enabled": True}, "focal": {"enabled": True}}
    mix = {"mixing": {"strategy": "atds", "atds": {"refresh_every": 2}},
           "optim": {"max_steps": 3, "batch_size": 8, "per_task": True}}
    losses, report = _train(tiny_workspace, tmp_path, "mods", modules=modules, **mix)
    assert report["frozen_prefix"].startswith("layers 0..1") and len(losses) == 3
    rows = [json.loads(line) for line in (tmp_path / "mods" / "metrics.jsonl").read_text().splitlines()]
    assert all("dagg" in r and "align" in r for r in rows)  # DAGG's default layers: the middle of those that train
    below = {**modules, "tiar": {"enabled": True, "period": 2, "layer": 1}}
    _, report = _train(tiny_workspace, tmp_path, "tiar_low", modules=below, **mix)
    assert report["frozen_prefix"] == "off: modules.tiar.layer 1 reads a hidden state below layer 2"
    _, report = _train(tiny_workspace, tmp_path, "packed", data={"prepared": [str(tiny_workspace["prepared"])],
                                                                "max_length": 160, "batching": "packed"},
                       optim={"max_steps": 1, "batch_size": 8, "per_task": False})
    assert report["frozen_prefix"] == "off: data.batching packed (several examples per row)"
    bad = {**modules, "dagg": {"enabled": True, "layers": [0]}}
    cfg = train_config(tmp_path / "bad.yaml", **_sections(tiny_workspace, tmp_path / "bad", modules=bad, **mix))
    with pytest.raises(ValueError, match=r"modules.dagg.layers: \[0\] lie below the lowest trained layer 2"):
        from mftcoder_pp.train.loop import train

        train(str(cfg), progress=False)
