"""Everything a run needs before its first step: tokenizer, data, model with adapters, phases."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..data.prompts import language_token
from ..execution.languages import LANGUAGES
from ..model.adapters import AdapterReport, apply_adapters
from ..model.load import build_tiny, load_model, load_tokenizer
from .config import TrainConfig
from .dataset import Corpus, build_corpus, select_tasks
from .export import save_base


@dataclass
class Phase:
    name: str
    tasks: list[str]
    start: int  # first optimizer step
    end: int  # one past the last


def load_data(cfg: TrainConfig, tokenizer) -> Corpus:
    d = cfg.data
    return build_corpus(d.prepared, tokenizer, max_length=d.max_length, stage=cfg.stage, tasks=d.tasks,
                        language_prefix=d.language_prefix, dev_per_task=d.dev_per_task, max_per_task=d.max_per_task,
                        seed=cfg.seed, pretrain_formats=tuple(d.pretrain_formats))


def build_model(cfg: TrainConfig, tokenizer, base_dir: Path | None = None):
    """(model, AdapterReport). A pretrained model whose tokenizer gained language tokens is resized;
    those rows are the vocabulary adapters. A LoRA run on a model built from a config writes that
    base to `base_dir` first, so its adapter has a base directory to load onto."""
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
    a = cfg.adapter
    return apply_adapters(model, a.kind, lora_rank=a.lora.rank, lora_alpha=a.lora.alpha, lora_dropout=a.lora.dropout,
                          target_modules=a.lora.target_modules, new_token_ids=new_ids,
                          freeze_position_embeddings=a.freeze_position_embeddings,
                          gradient_checkpointing=a.gradient_checkpointing)


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


def describe(report: AdapterReport) -> dict:
    return {"kind": report.kind, "trainable_params": report.trainable_params, "total_params": report.total_params,
            "trainable_share": round(report.trainable_params / max(report.total_params, 1), 6),
            "vocabulary_adapter_tokens": report.vocabulary_adapter_tokens,
            "frozen_position_embeddings": report.frozen_position_embeddings, "note": report.note}
