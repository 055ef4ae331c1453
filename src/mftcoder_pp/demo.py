"""`mftpp demo`: the embedded default — the whole pipeline at tiny scale on a CPU, nothing downloaded.

Synthetic multilingual data plus a slice of MBPP's train split and the packaged OASST chat data →
preprocessing report → vocabulary-fused tokenizer → a tiny Qwen2 base pretrained from scratch →
the base itself, MFTCoder++ (ATDS, per-task optimizers, all four modules) and plain LoRA SFT → greedy
generation on
the synthetic suite's held-out cross-lingual transfer split → sandboxed execution → a small report.

It is an ordinary experiment: the configs it writes to OUT/configs/ are the same YAML files
`mftpp experiment` reads, so any stage can be re-run or changed by hand. Re-running continues.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .model.load import TinyModelSpec

DEFAULT_OUT = "runs/demo"


def demo_configs(out: Path, scale: float = 1.0) -> dict[str, dict]:
    """The demo's configs; `scale` multiplies step counts and evaluation sizes (tests use a small one)."""
    steps = lambda n: max(2, int(n * scale))  # noqa: E731
    prepared, tokenizer = out / "prepared", out / "tokenizer"
    tiny = TinyModelSpec(hidden_size=192, num_layers=4, num_heads=6, num_kv_heads=2, intermediate_size=512)
    prepare = {"out": str(prepared), "seed": 0, "figures": True,
               "sources": [{"format": "synthetic", "name": "synthetic"},
                           {"format": "mbpp", "split": "train", "name": "mbpp-train", "limit": max(5, int(60 * scale))},
                           {"path": "package:data/instruct/octopack_oasstcommitpackft.jsonl.gz",
                            "format": "prompt_completion", "task": "chat", "language": "detect", "name": "oasst",
                            "limit": max(5, int(200 * scale))}]}
    tok = {"out": str(tokenizer), "mode": "scratch", "data": [str(prepared)], "kind": "bpe",
           "vocab_size_per_language": 1000, "min_frequency": 20}
    common = {"data": {"prepared": [str(prepared)], "tasks": ["synthesis/*"], "max_length": 320},
              "precision": "bf16", "checkpoint_every": 50, "tensorboard": False}
    pretrain = {**common, "out": str(out / "pretrain"), "stage": "pretrain",
                "model": {"tokenizer": str(tokenizer), "tiny": tiny.__dict__}, "adapter": {"kind": "full"},
                "mixing": {"strategy": "plain"},
                "optim": {"max_steps": steps(600), "batch_size": 16, "per_task": False, "lr": 3e-3}}
    sft = {**common, "out": str(out / "sft"), "model": {"path": str(out / "pretrain" / "final")},
           "adapter": {"kind": "lora", "lora": {"rank": 16, "alpha": 32, "dropout": 0.05}},
           "mixing": {"strategy": "atds", "atds": {"refresh_every": 5}},
           "optim": {"max_steps": steps(64), "batch_size": 16, "per_task": True, "lr_range": [2e-3, 4e-3]},
           "modules": {"hmd": {"enabled": True, "top_layers": 4, "rank": 8},
                       "tiar": {"enabled": True, "period": 5}, "dagg": {"enabled": True, "every": 2},
                       "focal": {"enabled": True}}}
    off = {f"modules.{m}.enabled": False for m in ("hmd", "tiar", "dagg", "focal")}
    experiment = {"out": str(out), "title": "mftpp demo: MFTCoder++ vs plain SFT (tiny model, CPU)",
                  "prepare": str(out / "configs" / "prepare.yaml"),
                  "tokenizer": str(out / "configs" / "tokenizer.yaml"),
                  "pretrain": str(out / "configs" / "pretrain.yaml"), "sft": str(out / "configs" / "sft.yaml"),
                  "seeds": [0],
                  "rows": [{"name": "Base model (no SFT)", "kind": "base"},
                           {"name": "SFT + LoRA (plain mixing)",
                            "set": {**off, "mixing.strategy": "plain", "optim.per_task": False, "optim.lr": 3e-3}},
                           {"name": "MFTCoder++"}],
                  "evaluation": {"max_new_tokens": 120, "batch_size": 32, "benchmarks": [
                      {"name": "synthetic-transfer", "limit": max(4, int(60 * scale))},
                      {"name": "synthetic-python", "limit": max(4, int(20 * scale))}]}}
    return {"prepare": prepare, "tokenizer": tok, "pretrain": pretrain, "sft": sft, "experiment": experiment}


def write_demo_configs(out: Path, scale: float = 1.0) -> Path:
    cdir = out / "configs"
    cdir.mkdir(parents=True, exist_ok=True)
    for name, data in demo_configs(out, scale).items():
        (cdir / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return cdir / "experiment.yaml"


def demo(out: str = DEFAULT_OUT, scale: float = 1.0, progress: bool = True) -> dict:
    from .experiment.runner import run_experiment

    return run_experiment(str(write_demo_configs(Path(out), scale)), progress=progress)
