"""The schema of a `mftpp prepare` config: sources, steps and their settings (strict: unknown keys
and bad values are errors naming the key, raised when the config loads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..data.records import TASK_TYPES
from ..data.sampling import DEFAULT_TEMPERATURE
from ..languages import get_language

PACKAGE_PREFIX = "package:"
MBPP_DISPLAY = "package:benchmarks/data/mbpp/mbpp.jsonl.gz"
STEPS = ("read", "syntax", "normalise", "anonymise", "exact_dedup", "near_dedup", "decontaminate")


SPLITS_OF = {"mbpp": ("train", "validation"), "synthetic": ("pretrain", "sft")}


class PrepareError(ValueError):
    """Bad input in strict mode; the message starts with file:line."""


@dataclass(frozen=True)
class SourceConfig:
    path: str | None = None  # a file (relative to the config file) or "package:data/..." (MBPP: default packaged)
    format: Literal["canonical", "alpaca", "chat_rounds", "prompt_completion", "mbpp", "synthetic"] = "canonical"
    task: str | None = None  # task type of every example (default: the row's, else the format's default)
    language: str = "detect"  # one of the six (or an alias), or "detect": the row's `language` field, else detected
    fields: dict[str, str] = field(default_factory=dict)  # schema key -> key in this source, e.g. {output: answer}
    name: str | None = None  # id prefix and report label (default: the file name without extensions)
    # MBPP: train (task ids 601-974, the default) or validation (511-600); synthetic: pretrain (the pool
    # rendered in all six languages) or sft (the imbalanced pool) — required, the two feed different stages
    split: str | None = None
    limit: int | None = None  # read at most this many rows

    def __post_init__(self):
        if self.format not in ("mbpp", "synthetic") and not self.path:
            raise ValueError(f"a {self.format!r} source needs a path")
        if self.task is not None and self.task not in TASK_TYPES:
            raise ValueError(f"task: unknown task type {self.task!r} (known: {', '.join(TASK_TYPES)})")
        if self.language != "detect":
            get_language(self.language)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        allowed = SPLITS_OF.get(self.format)
        if allowed is None and self.split is not None:
            raise ValueError(f"split: only mbpp and synthetic sources have splits, not {self.format!r}")
        if allowed is not None and self.split not in allowed and not (self.format == "mbpp" and self.split is None):
            raise ValueError(f"split: a {self.format} source needs split {' or '.join(allowed)}, got {self.split!r}")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.format in ("mbpp", "synthetic") and not self.path:
            return f"mbpp-{self.split or 'train'}" if self.format == "mbpp" else f"synthetic-{self.split}"
        base = Path(self.path.removeprefix(PACKAGE_PREFIX)).name
        return base.split(".")[0]


@dataclass(frozen=True)
class StepsConfig:
    syntax: bool = True
    normalise: bool = True
    anonymise: bool = False  # rename locals and parameters (v0, v1, ...): off by default, it changes the text
    exact_dedup: bool = True
    near_dedup: bool = True
    decontaminate: bool = True


@dataclass(frozen=True)
class NearDedupConfig:
    threshold: float = 0.85  # Jaccard similarity of token shingles at or above which an example is a near duplicate
    shingle: int = 5  # tokens per shingle
    num_perm: int = 128  # MinHash permutations

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"near_dedup.threshold must be in (0, 1], got {self.threshold}")
        if self.shingle < 1 or self.num_perm < 1:
            raise ValueError("near_dedup.shingle and near_dedup.num_perm must be >= 1")


@dataclass(frozen=True)
class DecontaminationConfig:
    ngram: int = 10  # tokens per n-gram
    benchmarks: list[str] | None = None  # default: every registered benchmark
    min_overlap: float = 0.5  # share of a benchmark text's n-grams that marks an example contaminated
    min_shared: int = 50  # ... or this many shared n-grams, whatever the share
    boilerplate_tasks: int = 3  # n-grams in more tasks than this (per benchmark) are template text

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"decontamination.ngram must be >= 1, got {self.ngram}")
        if not 0 < self.min_overlap <= 1:
            raise ValueError(f"decontamination.min_overlap must be in (0, 1], got {self.min_overlap}")
        if self.benchmarks is not None:
            from ..benchmarks import REGISTRY

            unknown = [b for b in self.benchmarks if b not in REGISTRY]
            if unknown:
                known = ", ".join(sorted(REGISTRY))
                raise ValueError(f"decontamination.benchmarks: unknown {unknown} (known: {known})")


@dataclass(frozen=True)
class PrepareConfig:
    sources: list[SourceConfig]
    out: str = "prepared"  # output directory (relative to the working directory)
    steps: StepsConfig = field(default_factory=StepsConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    temperature: float = DEFAULT_TEMPERATURE  # for the sampling table and Figure 3a (Eq. 13)
    seed: int = 0  # MinHash permutations and prompt-template variants
    figures: bool = True
    examples_per_reason: int = 5  # rejected examples quoted per reason in the report

    def __post_init__(self):
        if not self.sources:
            raise ValueError("sources: at least one source is needed")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
