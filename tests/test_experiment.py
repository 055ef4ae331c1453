"""`mftpp experiment`: rows resolve against the training schema, statistics, and a tiny whole
experiment (2 rows x 2 seeds) that writes its report and is cached on a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import TINY
from mftcoder_pp.cli import main
from mftcoder_pp.config import ConfigError, load_config
from mftcoder_pp.experiment.config import ExperimentConfig
from mftcoder_pp.experiment.runner import train_config

ROOT = Path(__file__).resolve().parents[1]


def test_pilot_and_reference_rows_are_validated(tmp_path):
    base = {"out": "x", "prepare": [], "tokenizer": "t", "pretrain": "p", "sft": "s",
            "rows": [{"name": "Base", "kind": "base"}, {"name": "Plain SFT"}],
            "evaluation": {"benchmarks": [{"name": "synthetic-rust"}]}}
    for extra, match in (({"pilots": [{"name": "p", "row": "Base", "benchmark": "b", "grid": {"optim.lr": [1]}}]},
                          "not an SFT row"),
                         ({"pilots": [{"name": "p", "row": "Plain SFT", "benchmark": "b", "grid": {}}]}, "grid"),
                         ({"pilots": [{"name": "p", "row": "Plain SFT", "benchmark": "b", "grid": {"optim.lr": [1]},
                                       "apply": "variant"}]}, "variant_name"),
                         ({"plain_row": "Nope"}, "plain_row"),
                         ({"rows": [{"name": "Base", "kind": "base"}, {"name": "base"}]}, "share the directory rows/base/")):
        path = tmp_path / "e.yaml"
        path.write_text(yaml.safe_dump({**base, **extra}))
        with pytest.raises(ConfigError, match=match):
            load_config(path, ExperimentConfig)
    path.write_text(yaml.safe_dump(base))
    assert load_config(path, ExperimentConfig).reference_rows() == {"base": "Base", "plain": "Plain SFT"}


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "experiment").glob("*.yaml")), ids=lambda p: p.name)
def test_every_row_of_shipped_experiments_is_a_valid_train_config(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(path, ExperimentConfig)
    resolved = [train_config(cfg.sft, {**row.set, "seed": 1}, f"{path}: rows[{i}]")
                for i, row in enumerate(cfg.rows) if row.kind == "sft"]
    assert resolved and all(t.seed == 1 for t in resolved)


def test_a_row_with_a_typo_names_the_row(tmp_path):
    sft = tmp_path / "sft.yaml"
    sft.write_text(yaml.safe_dump({"out": "x", "data": {"prepared": ["p"]}, "model": {"path": "m"}}))
    with pytest.raises(ConfigError, match=r"rows\[3\]: modules\.dag: unknown key"):
        train_config(str(sft), {"modules.dag.enabled": False}, "exp.yaml: rows[3]")


def test_tiny_experiment_writes_a_report_and_is_cached(tiny_workspace, tmp_path, capsys):
    ws = tiny_workspace
    tok_cfg = tmp_path / "tokenizer.yaml"
    tok_cfg.write_text(yaml.safe_dump({"out": str(ws["tokenizer"]), "mode": "scratch", "data": [str(ws["prepared"])]}))
    common = {"data": {"prepared": [str(ws["prepared"])], "max_length": 160}, "tensorboard": False,
              "checkpoint_every": 0}
    pre = tmp_path / "pre.yaml"
    pre.write_text(yaml.safe_dump({**common, "out": "unused", "stage": "pretrain", "adapter": {"kind": "full"},
                                   "model": {"tokenizer": "unused", "tiny": TINY}, "mixing": {"strategy": "plain"},
                                   "optim": {"max_steps": 3, "batch_size": 8, "per_task": False, "lr": 3e-3}}))
    sft = tmp_path / "sft.yaml"
    sft.write_text(yaml.safe_dump({**common, "out": "unused", "model": {"path": "unused"},
                                   "adapter": {"kind": "lora", "lora": {"rank": 4, "alpha": 8}},
                                   "optim": {"max_steps": 3, "batch_size": 4, "lr_range": [1e-3, 2e-3]},
                                   "modules": {"hmd": {"enabled": True, "top_layers": 1, "rank": 4},
                                               "focal": {"enabled": True}}}))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "out": str(tmp_path / "exp"), "prepare": [], "tokenizer": str(tok_cfg), "pretrain": str(pre),
        "sft": str(sft), "seeds": [0, 1],
        "pilots": [{"name": "lr", "row": "Plain SFT", "benchmark": "synthetic-python", "limit": 2,
                    "grid": {"optim.lr": [1e-3, 2e-3]}, "lr_range_factors": [0.5, 1.0]},
                   {"name": "focal", "row": "MFTCoder++", "benchmark": "synthetic-python", "limit": 2,
                    "grid": {"modules.focal.beta": [1.0]}, "apply": "variant", "variant_name": "Variant"}],
        "rows": [{"name": "Base", "kind": "base"},
                 {"name": "Base, completion", "kind": "base", "prompt_format": "completion"},
                 {"name": "Plain SFT", "set": {"mixing.strategy": "plain", "optim.per_task": False,
                                               "modules.hmd.enabled": False, "modules.focal.enabled": False}},
                 {"name": "MFTCoder++"}],
        "evaluation": {"max_new_tokens": 12, "batch_size": 8, "benchmarks": [
            {"name": "synthetic-rust", "limit": 2},
            {"name": "synthetic-python", "limit": 2, "seeds": "first"}]}}))
    assert main(["experiment", str(exp)]) == 0
    out = tmp_path / "exp"
    results = json.loads((out / "results.json").read_text())
    assert results["row_order"] == ["Base", "Base, completion", "Plain SFT", "MFTCoder++", "Variant"]
    # A row's own prompt format is the one its samples were generated in; the others use the default.
    def fmt(row):
        meta = out / "rows" / row / "seed-0" / "eval" / "synthetic-rust" / "greedy" / "samples.jsonl.meta.json"
        return json.loads(meta.read_text())["prompt_format"]
    assert (fmt("base-completion"), fmt("base"), fmt("plain-sft")) == ("completion", "instruct", "instruct")
    assert set(results["rows"]["MFTCoder++"]["synthetic-rust"]) == {"0", "1"}
    assert set(results["rows"]["Base"]["synthetic-rust"]) == {"0"}  # one model: evaluated once
    assert set(results["rows"]["MFTCoder++"]["synthetic-python"]) == {"0"}
    # The first pilot's winner is set on every SFT row; the second adds a row.
    lr = results["pilots"][0]["winner"]["optim.lr"]
    assert results["chosen"] == {"optim.lr": lr, "optim.lr_range": [0.5 * lr, lr]}
    trained = json.loads((out / "rows" / "mftcoder-pp" / "seed-1" / "train" / "train_config.json").read_text())
    assert trained["config"]["optim"]["lr_range"] == [0.5 * lr, lr]
    # Every artifact says how it was made, through one helper: version, commit, libraries, seed.
    seed_dir = out / "rows" / "mftcoder-pp" / "seed-1"
    made = [trained["provenance"]]
    made += [json.loads(p.read_text())["provenance"] for p in seed_dir.glob("eval/*/greedy/samples.jsonl.meta.json")]
    made += [json.loads(p.read_text())["provenance"] for p in seed_dir.glob("eval/*/greedy/eval/settings.json")]
    assert len(made) == 3 and trained["provenance"]["seed"] == 1
    for record in made:
        assert {"mftcoder_pp", "commit", "dirty", "libraries", "created"} <= set(record)
        assert record["libraries"]["torch"]
    assert results["row_settings"]["Variant"]["modules.focal.beta"] == 1.0
    assert (out / "pilots" / "lr" / "pilot.json").exists()
    report = (out / "report.md").read_text()
    assert "| MFTCoder++ |" in report and "| Plain SFT |" in report and "Δ vs plain LoRA" in report
    assert "| Variant |" in report and "Pilot `lr`" in report and "(chosen)" in report
    comparisons = json.loads((out / "comparisons.json").read_text())
    rust = comparisons["synthetic-rust"]["MFTCoder++"]
    assert rust["pass@1"]["tasks"] == 2 and rust["pass@1"]["seeds"] == 2
    assert rust["vs_base"]["seeds"] == 2 and "mdd" in rust["vs_plain"]
    assert "mftpp experiment" in report and (out / "figures" / "pass1_rows.png").exists()
    trained = (out / "rows" / "mftcoder-pp" / "seed-1" / "train" / "train_summary.json").stat().st_mtime
    capsys.readouterr()
    assert main(["experiment", str(exp)]) == 0  # everything cached: nothing retrained or regenerated
    err = capsys.readouterr().err
    assert "training" not in err and "greedy" not in err
    assert (out / "rows" / "mftcoder-pp" / "seed-1" / "train" / "train_summary.json").stat().st_mtime == trained
    assert "**Base, completion** in `completion`" in report
    # A cached evaluation made with other generation settings is not reused as if it were the asked one.
    changed = yaml.safe_load(exp.read_text())
    changed["evaluation"]["max_new_tokens"] = 13
    exp.write_text(yaml.safe_dump(changed))
    assert main(["experiment", str(exp)]) == 2
    assert "cached samples were generated with other settings (max_new_tokens 12 -> 13)" in capsys.readouterr().err
    # Nor is a finished training run reused when its config changed.
    changed["evaluation"]["max_new_tokens"] = 12
    exp.write_text(yaml.safe_dump(changed))
    sft_cfg = yaml.safe_load(sft.read_text())
    sft_cfg["optim"]["max_steps"] = 4
    sft.write_text(yaml.safe_dump(sft_cfg))
    assert main(["experiment", str(exp)]) == 2
    assert "a finished run trained with another config (optim.max_steps 3 -> 4)" in capsys.readouterr().err


def test_row_slugs_follow_the_run_directory_contract():
    """Other tools find rows by slug: base contains `base`, plain LoRA `plain`, MFTCoder++ is or
    contains `mftcoder-pp`, and MFTCoder / MFTCoder++ never share a directory."""
    from mftcoder_pp.report.experiment import slug

    assert slug("MFTCoder++") == "mftcoder-pp" and slug("MFTCoder") == "mftcoder"
    assert slug("MFTCoder++ w/o ATDS") == "mftcoder-pp-w-o-atds"
    assert slug("SFT + LoRA (plain mixing)") == "sft-lora-plain-mixing"
    assert "base" in slug("Base model (no SFT)")
