"""`mftpp demo`: the embedded default — the whole pipeline at tiny scale on a CPU, nothing downloaded.

The same design as the CPU Table 1 (docs/experiment.md), at one seed: the synthetic suite's
pretraining pool (all six languages) and SFT pool (combinations the base never saw, python >> rust)
→ preprocessing reports → a vocabulary-fused tokenizer → a tiny Qwen2 base pretrained from scratch on
the pretraining pool, in both renderings → the base itself, plain LoRA SFT and MFTCoder++ (ATDS,
per-task optimizers, the two-phase curriculum, all four modules) → greedy generation on the
held-out cross-lingual transfer split, every row prompted alike → sandboxed execution → a report with
every row's paired difference against the base and plain LoRA (95% task-bootstrap CIs).

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
    pre_data, sft_data, tokenizer = out / "prepared" / "pretrain-pool", out / "prepared" / "sft-pool", out / "tokenizer"
    tiny = TinyModelSpec(hidden_size=192, num_layers=4, num_heads=6, num_kv_heads=2, intermediate_size=512)
    pool = lambda split, where: {"out": str(where), "seed": 0, "figures": True,  # noqa: E731
                                 "sources": [{"format": "synthetic", "split": split, "name": f"synthetic-{split}"}]}
    tok = {"out": str(tokenizer), "mode": "scratch", "data": [str(pre_data), str(sft_data)], "kind": "bpe",
           "vocab_size_per_language": 1000, "min_frequency": 20}
    common = {"precision": "fp32", "checkpoint_every": 100, "tensorboard": False}
    pretrain = {**common, "precision": "bf16", "out": str(out / "pretrain"), "stage": "pretrain",
                "data": {"prepared": [str(pre_data)], "tasks": ["synthesis/*"], "max_length": 320,
                         "pretrain_formats": ["code", "prompt"]},
                "model": {"tokenizer": str(tokenizer), "tiny": tiny.__dict__}, "adapter": {"kind": "full"},
                "mixing": {"strategy": "plain"},
                "optim": {"max_steps": steps(400), "batch_size": 16, "per_task": False, "lr": 3e-3}}
    sft = {**common, "out": str(out / "sft"), "model": {"path": str(out / "pretrain" / "final")},
           "data": {"prepared": [str(sft_data)], "tasks": ["synthesis/*"], "max_length": 320},
           "adapter": {"kind": "lora", "lora": {"rank": 16, "alpha": 32, "dropout": 0.0}},
           "mixing": {"strategy": "atds", "atds": {"refresh_every": 5}},
           "optim": {"max_steps": steps(128), "batch_size": 16, "per_task": True, "lr_range": [1.5e-3, 3e-3],
                     "lr": 3e-3, "phases": [
                         {"name": "python", "tasks": ["*/python"], "fraction": 0.3},
                         {"name": "multilingual", "tasks": ["*/javascript", "*/java", "*/go", "*/cpp", "*/rust"],
                          "fraction": 0.7}]},
           "modules": {"hmd": {"enabled": True, "top_layers": 4, "rank": 8},
                       "tiar": {"enabled": True, "period": 5}, "dagg": {"enabled": True, "every": 2},
                       "focal": {"enabled": True}}}
    off = {f"modules.{m}.enabled": False for m in ("hmd", "tiar", "dagg", "focal")}
    cdir = out / "configs"
    experiment = {"out": str(out), "title": "mftpp demo: does SFT add knowledge that transfers across languages? (tiny model, CPU)",
                  "prepare": [str(cdir / "prepare_pretrain_pool.yaml"), str(cdir / "prepare_sft_pool.yaml")],
                  "tokenizer": str(cdir / "tokenizer.yaml"),
                  "pretrain": str(cdir / "pretrain.yaml"), "sft": str(cdir / "sft.yaml"),
                  "seeds": [0],
                  "rows": [{"name": "Base model (no SFT)", "kind": "base"},
                           {"name": "SFT + LoRA (plain mixing)",
                            "set": {**off, "mixing.strategy": "plain", "optim.per_task": False, "optim.phases": []}},
                           {"name": "MFTCoder++"}],
                  "evaluation": {"max_new_tokens": 120, "batch_size": 32, "prompt_format": "instruct", "benchmarks": [
                      {"name": "synthetic-transfer", "limit": max(4, int(150 * scale))}]}}
    return {"prepare_pretrain_pool": pool("pretrain", pre_data), "prepare_sft_pool": pool("sft", sft_data),
            "tokenizer": tok, "pretrain": pretrain, "sft": sft, "experiment": experiment}


def write_demo_configs(out: Path, scale: float = 1.0) -> Path:
    cdir = out / "configs"
    cdir.mkdir(parents=True, exist_ok=True)
    for name, data in demo_configs(out, scale).items():
        (cdir / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return cdir / "experiment.yaml"


def demo(out: str = DEFAULT_OUT, scale: float = 1.0, progress: bool = True) -> dict:
    from .experiment.runner import run_experiment

    return run_experiment(str(write_demo_configs(Path(out), scale)), progress=progress)
