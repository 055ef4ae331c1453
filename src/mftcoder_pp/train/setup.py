"""Everything a run needs before its first step: tokenizer, data, model with adapters, phases, data
streams, task schedulers, optimizers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, check_exists, check_output_dir
from ..data.prompts import language_token
from ..languages import LANGUAGES
from ..losses.coba import CoBa
from ..model.adapters import AdapterReport, apply_adapters
from ..model.load import (ModelLoadError, build_tiny, check_model_dir, check_tokenizer_dir, load_model,
                          load_tokenizer)
from ..modules.hmd_fusion import HMDConfig
from . import optim as O
from .batching import Stream
from .config import TrainConfig
from .dataset import Corpus, build_corpus, select_tasks
from .export import save_base
from .mixing import TaskScheduler


@dataclass
class Phase:
    name: str
    tasks: list[str]
    start: int  # first optimizer step
    end: int  # one past the last


def check_inputs(cfg: TrainConfig, where: str) -> None:
    """Every path the config names, checked before anything loads: a typo must fail in a second, not
    after the tokenizer, the data and the model have loaded."""
    m = cfg.model
    # In the order the run loads them: the tokenizer (from model.path unless model.tokenizer), the model.
    checks = [("model.tokenizer" if m.tokenizer else "model.path", check_tokenizer_dir, m.tokenizer or m.path)]
    checks += [("model.path", check_model_dir, m.path)] if m.path else []
    for key, check, path in checks:
        try:
            check(path)
        except ModelLoadError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
    for i, path in enumerate(cfg.data.prepared):
        check_exists(path, f"{where}: data.prepared[{i}]", " (run `mftpp prepare` first)")
    check_output_dir(cfg.out, f"{where}: out")


def load_data(cfg: TrainConfig, tokenizer) -> Corpus:
    d = cfg.data
    return build_corpus(d.prepared, tokenizer, max_length=d.max_length, stage=cfg.stage, tasks=d.tasks,
                        language_prefix=d.language_prefix, dev_per_task=d.dev_per_task, max_per_task=d.max_per_task,
                        seed=cfg.seed, pretrain_formats=tuple(d.pretrain_formats))


def build_model(cfg: TrainConfig, tokenizer, base_dir: Path | None = None):
    """(model, AdapterReport) with every adapter applied (LoRA or full, vocabulary rows, HMD-Fusion),
    so the report counts all that trains. A pretrained model whose tokenizer gained language tokens is
    resized; those rows are the vocabulary adapters. A LoRA run on a model built from a config writes
    that base to `base_dir` first, so its adapter has a base directory to load onto."""
    m = cfg.model
    if m.path is None:
        model = build_tiny(m.tiny, tokenizer, seed=cfg.seed, attn_implementation=m.attn_implementation)
        if cfg.adapter.kind == "lora" and base_dir is not None:
            save_base(model, tokenizer, base_dir)
    else:
        model = load_model(m.path, attn_implementation=m.attn_implementation)
    vocab = tokenizer.get_vocab()
    old_rows = model.get_input_embeddings().weight.shape[0]
    if old_rows < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    lang_ids = [vocab[language_token(lang)] for lang in LANGUAGES if language_token(lang) in vocab]
    # Vocabulary adapters train the language rows; for a pretrained base those are the new rows.
    new_ids = lang_ids if cfg.adapter.vocabulary_adapters else []
    a, h = cfg.adapter, cfg.modules.hmd
    # Every language gets a branch, trained or not: generation may ask for any of them.
    hmd = HMDConfig(languages=list(LANGUAGES), top_layers=h.top_layers, rank=h.rank,
                    decoupling=h.decoupling) if h.enabled else None
    return apply_adapters(model, a.kind, lora_rank=a.lora.rank, lora_alpha=a.lora.alpha, lora_dropout=a.lora.dropout,
                          target_modules=a.lora.target_modules, lora_layers=a.lora.layers, new_token_ids=new_ids,
                          freeze_position_embeddings=a.freeze_position_embeddings,
                          gradient_checkpointing=a.gradient_checkpointing, hmd=hmd)


def tokenizer_for(cfg: TrainConfig):
    return load_tokenizer(cfg.model.tokenizer or cfg.model.path)


def plan_phases(cfg: TrainConfig, tasks: list[str]) -> list[Phase]:
    """The curriculum's phases as step ranges; no phases configured = one phase over every task."""
    total = cfg.optim.max_steps
    if not cfg.optim.phases:
        return [Phase("all", tasks, 0, total)]
    phases, start = [], 0
    for i, p in enumerate(cfg.optim.phases):
        chosen = select_tasks(set(tasks), p.tasks, where=f"optim.phases[{i}].tasks")
        end = total if i == len(cfg.optim.phases) - 1 else min(total, start + math.floor(p.fraction * total))
        phases.append(Phase(p.name, chosen, start, end))
        start = end
    return phases


def make_streams(cfg: TrainConfig, corpus: Corpus, phases: list[Phase]) -> dict[str, Stream]:
    """Data order: one stream per task (a task per step), or one mixed stream per phase (plain)."""
    group, size = cfg.data.batching == "length_grouped", cfg.optim.batch_size
    if cfg.mixing.strategy == "plain":
        return {p.name: Stream([ex for t in p.tasks for ex in corpus.train[t]], size, cfg.seed, f"phase:{p.name}",
                               group) for p in phases}
    return {t: Stream(corpus.train[t], size, cfg.seed, t, group) for t in corpus.tasks}


def make_schedulers(cfg: TrainConfig, corpus: Corpus, phases: list[Phase]) -> dict[str, TaskScheduler]:
    """One task scheduler per phase over its tasks; plain mixing keeps the temperature prior (the focal
    term's α)."""
    mc, a = cfg.mixing, cfg.mixing.atds
    strategy = "temperature" if mc.strategy == "plain" else mc.strategy
    return {p.name: TaskScheduler({t: len(corpus.train[t]) for t in p.tasks}, strategy, temperature=mc.temperature,
                                  alpha=a.alpha, beta=a.beta, refresh_every=a.refresh_every, ema=a.ema,
                                  min_prob=a.min_prob, velocity_sign=a.velocity_sign, seed=cfg.seed + i)
            for i, p in enumerate(phases)}


def make_coba(cfg: TrainConfig, tasks: list[str]) -> CoBa | None:
    c = cfg.mixing.coba
    if cfg.mixing.loss != "coba":
        return None
    return CoBa(tasks, window=c.window, temperature=c.temperature, warmup_points=c.warmup_points)


def make_optimizers(cfg: TrainConfig, corpus: Corpus, params: list) -> tuple[dict[str, float], dict]:
    """(base rate per optimizer, optimizers): one AdamW per task, or one "shared"."""
    oc = cfg.optim
    rates = O.per_task_rates(corpus.sizes(), *oc.lr_range) if oc.per_task else {"shared": oc.lr}
    return rates, O.build_optimizers(params, rates, weight_decay=oc.weight_decay, betas=tuple(oc.betas))


def describe(report: AdapterReport) -> dict:
    return {"kind": report.kind, "trainable_params": report.trainable_params, "total_params": report.total_params,
            "trainable_share": round(report.trainable_params / max(report.total_params, 1), 6),
            "vocabulary_adapter_tokens": report.vocabulary_adapter_tokens,
            "frozen_position_embeddings": report.frozen_position_embeddings, "note": report.note}
