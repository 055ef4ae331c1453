"""Shared fixtures: a tiny training workspace (prepared synthetic data + a small BPE tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def reported(outs, kwargs):
    """What a stub of the decoder (`engine.generate_batch`) returns, reported row by row through its
    on_output, as the real one does."""
    for k, o in enumerate(outs):
        kwargs["on_output"](k, o)
    return outs


def write_prepared(out: Path, per_task: int = 24, languages=("python", "rust", "go")) -> Path:
    """Canonical records of the synthetic suite's pretraining pool, one JSONL file per task, like `mftpp prepare`."""
    from mftcoder_pp.synthetic.suite import generate_suite

    out.mkdir(parents=True, exist_ok=True)
    suite = generate_suite(0, splits=("pretrain",))
    for lang in languages:
        recs = suite.records("pretrain", lang)[:per_task]
        with (out / f"synthesis-{lang}.jsonl").open("w") as f:
            for i, r in enumerate(recs):
                r.meta["prompt_variant"] = i % 2
                f.write(r.to_json() + "\n")
    return out


def write_tokenizer(out: Path, prepared: Path) -> Path:
    from mftcoder_pp.tokenizer import build_tokenizer

    cfg = out.parent / "tokenizer.yaml"
    cfg.write_text(json.dumps({"out": str(out), "mode": "scratch", "data": [str(prepared)], "kind": "bpe",
                               "vocab_size_per_language": 400, "min_frequency": 4}))
    build_tokenizer(str(cfg))
    return out


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("workspace")
    prepared = write_prepared(root / "prepared")
    return {"root": root, "prepared": prepared, "tokenizer": write_tokenizer(root / "tokenizer", prepared)}


TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}


def train_config(path: Path, **sections) -> Path:
    """Write a train config (JSON is YAML) whose sections are merged over `sections`."""
    path.write_text(json.dumps(sections, indent=1))
    return path
