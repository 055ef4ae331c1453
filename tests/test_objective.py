"""The MFTCoder++ objective inside training: every module with LoRA and with full fine-tuning,
terms logged, states in the checkpoint (resume reproduces the run), adapters exported and loadable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import TINY, train_config
from mftcoder_pp.cli import main
from mftcoder_pp.model.load import load_for_inference

ALL_ON = {"hmd": {"enabled": True, "top_layers": 2, "rank": 4, "decoupling": True},
          "tiar": {"enabled": True, "period": 2, "buffer": 32},
          "dagg": {"enabled": True, "layers": [-1]},
          "focal": {"enabled": True}}


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def base(tiny_workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("objbase") / "pre"
    cfg = train_config(out.parent / "pre.yaml", out=str(out), stage="pretrain",
                       data={"prepared": [str(tiny_workspace["prepared"])], "max_length": 192},
                       model={"tokenizer": str(tiny_workspace["tokenizer"]), "tiny": TINY}, adapter={"kind": "full"},
                       mixing={"strategy": "plain"}, optim={"max_steps": 3, "batch_size": 8, "per_task": False},
                       checkpoint_every=0, tensorboard=False)
    assert main(["train", str(cfg), "--quiet"]) == 0
    return out / "final"


def _sections(ws, base, out, kind):
    return {"out": str(out), "data": {"prepared": [str(ws["prepared"])], "max_length": 192},
            "model": {"path": str(base)},
            "adapter": {"kind": kind, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
            "mixing": {"strategy": "atds", "atds": {"refresh_every": 2}},
            "optim": {"max_steps": 8, "batch_size": 4, "grad_accum": 2, "lr_range": [5e-4, 2e-3]},
            "checkpoint_every": 4, "tensorboard": False, "modules": ALL_ON,
            "precision": "bf16" if kind == "full" else "fp32"}  # bf16 autocast covers DAGG's float32 path


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_all_modules_train_log_resume_and_export(tiny_workspace, base, tmp_path, kind):
    out = tmp_path / "run"
    cfg = train_config(tmp_path / "run.yaml", **_sections(tiny_workspace, base, out, kind))
    assert main(["train", str(cfg), "--quiet"]) == 0
    rows = _rows(out)
    assert len(rows) == 8
    for key in ("dagg", "align", "decoupling", "gate"):
        assert all(key in r for r in rows), key
    assert sum("adv" in r for r in rows) == 4  # TIAR: model phases are steps 2-3 and 6-7 (period 2)
    assert sum("discriminator_accuracy" in r for r in rows) == 4
    assert all(0 < v < 1 for r in rows for v in r["gate"].values())

    # resume from the step-4 checkpoint in a copy: steps 5-8 come out identical
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("final", "base"))
    cfg2 = train_config(tmp_path / "copy.yaml", **{**_sections(tiny_workspace, base, copy, kind)})
    assert main(["train", str(cfg2), "--resume", "--quiet"]) == 0
    again = _rows(copy)
    keys = ("task", "loss", "dagg", "align", "decoupling", "task_probability")
    assert [{k: r.get(k) for k in keys} for r in rows] == [{k: r.get(k) for k in keys} for r in again]

    # the exported model (base + LoRA/full weights + HMD adapter) loads back and routes by language
    model, tok = load_for_inference(out / "final")
    assert (out / "final" / "hmd_adapter_config.json").exists()
    from mftcoder_pp.modules.hmd_fusion import hmd_layers, language_routing
    assert len(hmd_layers(model)) == 2
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad(), language_routing(model, torch.tensor([0])):
        a = model(ids).logits
    with torch.no_grad(), language_routing(model, torch.tensor([5])):
        b = model(ids).logits
    assert not torch.allclose(a, b)  # python and rust branches differ after training


def test_packed_batching_with_modules_is_refused(tiny_workspace, base, tmp_path, capsys):
    sections = _sections(tiny_workspace, base, tmp_path / "x", "lora")
    sections["data"]["batching"] = "packed"
    assert main(["train", str(train_config(tmp_path / "x.yaml", **sections)), "--quiet"]) == 2
    assert "one sample per row" in capsys.readouterr().err
