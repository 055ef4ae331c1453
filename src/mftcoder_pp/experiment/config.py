"""The `mftpp experiment` config schema.

An experiment is: a prepared dataset and a tokenizer, one pretrained base shared by every row, an SFT
config every row starts from, rows that override keys of it (dotted paths, checked against the
training schema), seeds, and the benchmarks to generate for and execute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal


def slug(name: str) -> str:
    """A row's directory name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class RowConfig:
    name: str  # shown in the table
    kind: Literal["sft", "base"] = "sft"  # base: evaluate the pretrained base, no SFT
    set: dict[str, Any] = field(default_factory=dict)  # dotted train-config keys -> values

    def __post_init__(self):
        if self.kind == "base" and self.set:
            raise ValueError(f"row {self.name!r}: a base row has nothing to `set`")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str  # a registered benchmark
    limit: int | None = None  # N tasks evenly spaced over the benchmark (None: all)
    samples: int = 0  # sampled completions per task for pass@k (0: greedy pass@1 only)
    sampled_limit: int | None = None  # tasks for the sampled run, evenly spaced (default: `limit`)
    temperature: float = 0.8
    top_p: float = 0.95
    seeds: str = "all"  # "all" or "first": evaluate every seed's model, or only the first seed's
    max_new_tokens: int | None = None  # default: evaluation.max_new_tokens

    def __post_init__(self):
        if self.samples < 0 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"benchmark {self.name!r}: samples >= 0, temperature > 0, 0 < top_p <= 1")
        if self.seeds not in ("all", "first"):
            raise ValueError(f"benchmark {self.name!r}: seeds must be 'all' or 'first'")


@dataclass(frozen=True)
class EvaluationConfig:
    benchmarks: list[BenchmarkSpec]
    max_new_tokens: int = 160
    batch_size: int = 32
    workers: int | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class ExperimentConfig:
    out: str
    prepare: str | None  # a `mftpp prepare` config (run once, cached), or null when `prepared` exists
    tokenizer: str  # a `mftpp tokenizer` config (run once, cached)
    pretrain: str  # a train config with stage: pretrain (run once, cached)
    sft: str  # the train config every SFT row starts from
    rows: list[RowConfig]
    evaluation: EvaluationConfig
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    title: str = "MFTCoder++ at CPU scale"

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        names = [r.name for r in self.rows]
        if not names or len(set(names)) != len(names):
            raise ValueError("rows must be non-empty with distinct names")
