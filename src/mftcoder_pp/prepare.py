"""`mftpp prepare CONFIG`: raw sources -> canonical JSONL, one file per task, plus a report.

Steps, in order (each can be switched off in the config): read (every source, every schema) ->
syntax check (tree-sitter) -> lexical normalisation -> identifier anonymisation (off by default)
-> exact dedup -> near dedup (MinHash/LSH) -> decontamination against the evaluation benchmarks ->
write `<task>-<language>.jsonl`, `report.json`, `report.md` and the Figure 3 PNGs.

Bad input (a malformed line, invalid UTF-8, a missing field, an unknown language, an empty output)
is counted and reported with file:line; with strict=True the first one stops the run with a
`PrepareError` (a ValueError) naming file:line. Filters (syntax, duplicates, contamination) never
stop a run: they are what preprocessing is for, and they are reported the same way.
"""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator, Literal

from . import __version__
from .config import ConfigError, check_output_dir, load_config
from .data.anonymise import anonymise
from .data.codetokens import code_tokens
from .data.decontaminate import BenchmarkText, ContaminationIndex
from .data.dedup import content_key, exact_duplicates, near_duplicates
from .data.fences import code_blocks, code_only
from .data.normalise import normalise_code, normalise_text
from .data.readers import Problem, SourceError, read_source
from .data.records import TASK_TYPES, Record
from .data.sampling import DEFAULT_TEMPERATURE, curriculum_order, temperature_probabilities
from .data.syntax import check_example
from .languages import get_language
from .prepare_sources import MBPP, packaged_mbpp, read_synthetic

PACKAGE_PREFIX = "package:"
VOCAB_TOP = 200  # tokens per language compared in Figure 3c
ANONYMISE_STATUS = {"ok": "renamed", "unchanged": "nothing to rename", "parse error": "skipped (does not parse alone)",
                    "reparse failed": "reparse failed (original kept)"}
SYNTHETIC_BENCHMARK_PREFIX = "synthetic"  # benchmarks made from the synthetic suite's held-out splits
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
            from .benchmarks import REGISTRY

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


def prepare(config_path: str, out: str | None = None, strict: bool = False) -> dict:
    """Run the preprocessing described by a YAML config; returns the report (also written to out/)."""
    cfg = load_config(config_path, PrepareConfig)
    return run_prepare(cfg, out=out or cfg.out, base_dir=Path(config_path).resolve().parent, strict=strict,
                       config_path=str(config_path))


def run_prepare(cfg: PrepareConfig, out: str, base_dir: Path = Path("."), strict: bool = False,
                config_path: str = "<config>") -> dict:
    start = time.monotonic()
    out_dir = Path(out)
    rejected: list[tuple[str, Problem, str | None]] = []  # (step, problem, record id)
    steps: list[dict] = []

    # ---- read -------------------------------------------------------------------------------------
    # Every source is found before any is read: a typo in the last path must not cost a long read.
    paths = [source_path(src, base_dir, f"{config_path}: sources[{i}].path") for i, src in enumerate(cfg.sources)]
    check_output_dir(out_dir, f"{config_path}: out")
    records: list[Record] = []
    sources = []
    for i, (src, path) in enumerate(zip(cfg.sources, paths)):
        read = bad = 0
        try:
            for item in _read(src, path, cfg.seed):
                read += 1
                if isinstance(item, Problem):
                    bad += 1
                    if strict:
                        raise PrepareError(str(item))
                    rejected.append(("read", item, None))
                else:
                    records.append(item)
        except SourceError as exc:
            raise ConfigError(f"{config_path}: sources[{i}].path: {exc}") from None
        if read == 0:  # an empty export is a mistake to report, not a source that happens to add nothing
            raise ConfigError(f"{config_path}: sources[{i}].path: {src.path}: holds no rows (an empty file)")
        sources.append({"name": src.label, "format": src.format,
                        "path": src.path or (MBPP_DISPLAY if src.format == "mbpp" else src.format),
                        "read": read, "rejected_on_read": bad})
    last = start

    def done(step: str) -> None:  # counts after the step, and its time
        nonlocal last
        now = time.monotonic()
        steps.append({**_counts(step, records), "seconds": round(now - last, 3)})
        last = now

    done("read")

    def drop(step: str, bad: dict[int, Problem]) -> None:
        nonlocal records
        for i, problem in bad.items():
            rejected.append((step, problem, records[i].id))
        records = [r for i, r in enumerate(records) if i not in bad]
        done(step)

    # ---- syntax -----------------------------------------------------------------------------------
    how_parsed: dict[str, str] = {}
    if cfg.steps.syntax:
        bad = {}
        for i, rec in enumerate(records):
            how, error = check_example(rec.output, rec.input, rec.language)
            if how is None:
                bad[i] = Problem(rec.source or rec.id, "syntax error", f"{rec.language}: {error}", _snip(rec.output))
            else:
                how_parsed[rec.id] = how
        drop("syntax", bad)

    # ---- normalise --------------------------------------------------------------------------------
    if cfg.steps.normalise:
        for rec in records:
            rec.instruction = normalise_text(rec.instruction)
            rec.input = normalise_code(rec.input, rec.language, final_newline=False) if rec.input.strip() else ""
            rec.output = normalise_code(rec.output, rec.language)
        done("normalise")

    # ---- anonymise --------------------------------------------------------------------------------
    anon_stats = None
    before_anonymise: dict[int, str] = {}  # id(record) -> output as it was (decontamination compares that)
    if cfg.steps.anonymise:
        anon_stats = Counter()
        for rec in records:
            if code_blocks(rec.output):
                anon_stats["skipped (chat answer with prose)"] += 1
                continue
            result = anonymise(rec.output, rec.language, keep=(rec.entry_point,) if rec.entry_point else ())
            anon_stats[ANONYMISE_STATUS[result.status]] += 1
            if result.status == "ok":
                before_anonymise[id(rec)] = rec.output
                rec.output = result.code
                rec.meta["anonymised"] = len(result.renamed)
        anon_stats = dict(anon_stats)
        done("anonymise")

    # ---- exact and near duplicates ----------------------------------------------------------------
    if cfg.steps.exact_dedup:
        dups = exact_duplicates([content_key(r.input, r.output) for r in records])
        drop("exact_dedup", {i: Problem(records[i].source or records[i].id, "exact duplicate",
                                        f"same input and output as {records[j].id} ({records[j].source})",
                                        _snip(records[i].output)) for i, j in dups.items()})
    if cfg.steps.near_dedup:
        bad = {}
        by_lang: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_lang.setdefault(r.language, []).append(i)
        nd = cfg.near_dedup
        for _, idx in sorted(by_lang.items()):
            tokens = [code_tokens(records[i].input + "\n" + records[i].output) for i in idx]
            for a, (b, sim) in near_duplicates(tokens, nd.threshold, nd.num_perm, nd.shingle, cfg.seed).items():
                i, j = idx[a], idx[b]
                detail = f"Jaccard {sim:.2f} with {records[j].id} ({records[j].source})"
                bad[i] = Problem(records[i].source or records[i].id, "near duplicate", detail, _snip(records[i].output))
        drop("near_dedup", bad)

    # ---- decontaminate ----------------------------------------------------------------------------
    decon = None
    if cfg.steps.decontaminate:
        dc = cfg.decontamination
        names = tuple(dc.benchmarks) if dc.benchmarks is not None else _all_benchmarks()
        index = benchmark_index(names, dc.ngram, dc.boilerplate_tasks, dc.min_overlap, dc.min_shared)
        # The synthetic suite's held-out splits are disjoint from its training pools by construction
        # (combination keys), while its families share code templates by design: its own records
        # are matched against every benchmark but those.
        synthetic_sources = {s.label for s in cfg.sources if s.format == "synthetic"}
        own_suite = frozenset(b for b in names if b.startswith(SYNTHETIC_BENCHMARK_PREFIX))
        bad, removed = {}, []
        for i, rec in enumerate(records):
            exclude = own_suite if rec.meta.get("source") in synthetic_sources else frozenset()
            output = before_anonymise.get(id(rec), rec.output)  # benchmark texts keep their names
            m = index.match(rec.instruction + "\n" + rec.input + "\n" + output, exclude)
            if m is not None:
                bad[i] = Problem(rec.source or rec.id, "contaminated", m.describe(), _snip(rec.output))
                removed.append({"id": rec.id, "where": rec.source, **asdict(m)})
        decon = {"ngram": dc.ngram, "min_overlap": dc.min_overlap, "min_shared": dc.min_shared,
                 "boilerplate_tasks": dc.boilerplate_tasks, "boilerplate_ngrams": len(index.boilerplate),
                 "benchmarks": list(names), "removed": removed,
                 "not_matched": {src: sorted(own_suite) for src in sorted(synthetic_sources)} if own_suite else {}}
        drop("decontaminate", bad)

    # ---- write ------------------------------------------------------------------------------------
    outputs = write_records(out_dir, records, cfg.seed)
    report = _report(cfg, config_path, strict, steps, sources, rejected, records, outputs, decon, anon_stats)
    if cfg.figures and records:
        report["figures"] = _figures(out_dir, records, cfg.temperature)
    report["out"] = str(out_dir)
    report["seconds"] = round(time.monotonic() - start, 2)
    from .data.report import write_report

    write_report(out_dir, report)
    return report


# ---- helpers ----------------------------------------------------------------------------------------

def resolve_path(src: SourceConfig, base_dir: Path) -> Path | None:
    """`package:data/...` -> inside the installed package; a relative path -> next to the config."""
    if not src.path:
        return packaged_mbpp() if src.format == "mbpp" else None
    if src.path.startswith(PACKAGE_PREFIX):
        rel = src.path[len(PACKAGE_PREFIX):].lstrip("/")
        return Path(str(resources.files("mftcoder_pp").joinpath(rel)))
    path = Path(src.path).expanduser()
    return path if path.is_absolute() else base_dir / path


def source_path(src: SourceConfig, base_dir: Path, where: str) -> Path | None:
    """The resolved path of a source, which must be a file; `where` names the config key in errors."""
    path = resolve_path(src, base_dir)
    if path is None or path.is_file():
        return path
    shown = src.path or str(path)
    resolved = f" (resolved to {path})" if str(path) != shown else ""
    if src.path and src.path.startswith(PACKAGE_PREFIX):
        raise ConfigError(f"{where}: no such file in the mftcoder_pp package: {shown}{resolved}")
    if path.is_dir():
        raise ConfigError(f"{where}: {shown} is a directory, not a file{resolved}")
    if not path.exists():
        raise ConfigError(f"{where}: no such file: {shown}{resolved}")
    return path  # something else (a pipe, a device): reading it says whether it works


def _read(src: SourceConfig, path: Path | None, seed: int) -> Iterator[Record | Problem]:
    if src.format == "synthetic":
        yield from itertools.islice(read_synthetic(seed, src.label, src.split), src.limit)
        return
    assert path is not None
    yield from read_source(path, MBPP if src.format == "mbpp" else src.format, name=src.label, task=src.task,
                           language=None if src.language == "detect" else src.language, fields=src.fields,
                           split=src.split or "train", limit=src.limit, display=src.path or MBPP_DISPLAY)


def _all_benchmarks() -> tuple[str, ...]:
    from .benchmarks import REGISTRY

    return tuple(sorted(REGISTRY))


@functools.lru_cache(maxsize=4)
def benchmark_index(names: tuple[str, ...], n: int, boilerplate_tasks: int, min_overlap: float,
                    min_shared: int) -> ContaminationIndex:
    """The n-gram index of the benchmarks' prompts, references and tests (cached: building it for
    every registered benchmark takes seconds)."""
    from .benchmarks import get_benchmark

    texts = [BenchmarkText(name, t.task_id, f, getattr(t, f)) for name in names for t in get_benchmark(name).tasks()
             for f in ("prompt", "reference", "test")]
    return ContaminationIndex(texts, n=n, boilerplate_tasks=boilerplate_tasks, min_overlap=min_overlap,
                              min_shared=min_shared)


def task_file(rec: Record) -> str:
    return f"{rec.task}-{rec.language}.jsonl"


def write_records(out_dir: Path, records: list[Record], seed: int) -> dict[str, int]:
    """One JSONL file per task, records in input order; each gets its prompt-template variant."""
    from .data.prompts import variant_for

    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_outputs(out_dir)
    groups: dict[str, list[Record]] = {}
    for rec in records:
        groups.setdefault(task_file(rec), []).append(rec)
    for name, recs in sorted(groups.items()):
        with open(out_dir / name, "w", encoding="utf-8") as fh:
            for rec in recs:
                rec.meta["prompt_variant"] = variant_for(rec.id, seed)
                fh.write(rec.to_json() + "\n")
    return {name: len(recs) for name, recs in sorted(groups.items())}


def _remove_previous_outputs(out_dir: Path) -> None:
    """Task files an earlier run listed in its report: a rerun must not leave stale tasks behind."""
    try:
        previous = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for name in previous.get("outputs", {}):
        if "/" not in name and name.endswith(".jsonl"):
            (out_dir / name).unlink(missing_ok=True)


def _counts(step: str, records: list[Record]) -> dict:
    return {"step": step, "total": len(records),
            "by_task": dict(sorted(Counter(r.task_key for r in records).items())),
            "by_language": dict(sorted(Counter(r.language for r in records).items()))}


def _report(cfg: PrepareConfig, config_path: str, strict: bool, steps: list[dict], sources: list[dict],
            rejected: list[tuple[str, Problem, str | None]], records: list[Record], outputs: dict[str, int],
            decon: dict | None, anon_stats: dict | None) -> dict:
    kept_by_source = Counter(r.meta.get("source") for r in records)
    for s in sources:
        s["kept"] = kept_by_source.get(s["name"], 0)
    by_reason: dict[str, dict] = {}
    for step, problem, rec_id in rejected:
        info = by_reason.setdefault(problem.reason, {"count": 0, "step": step, "examples": []})
        info["count"] += 1
        if len(info["examples"]) < cfg.examples_per_reason:
            info["examples"].append({"where": problem.where, "detail": problem.detail, "snippet": problem.snippet,
                                     **({"id": rec_id} if rec_id else {})})
    sizes = {k: v for k, v in steps[-1]["by_task"].items()}
    return {
        "created_by": {"mftcoder_pp": __version__, "commit": _git_commit(), "config_path": str(config_path),
                       "config": asdict(cfg), "seed": cfg.seed, "strict": strict},
        "totals": {"read": steps[0]["total"] + sum(1 for s, _, _ in rejected if s == "read"),
                   "kept": len(records), "rejected": len(rejected)},
        "steps": steps,
        "steps_off": [s for s in STEPS[1:] if not getattr(cfg.steps, s)],
        "sources": sources,
        "outputs": outputs,
        "rejected": by_reason,
        "removed": [{"step": s, "reason": p.reason, "where": p.where, "detail": p.detail, "id": i}
                    for s, p, i in rejected],
        "decontamination": decon,
        "anonymisation": anon_stats,
        "sampling": {"temperature": cfg.temperature,
                     "probabilities": temperature_probabilities(sizes, cfg.temperature) if sizes else {}},
        "curriculum": [{"task": t, "mean_entropy": h} for t, h in curriculum_order(_task_tokens(records))]
        if records else [],
    }


def _task_tokens(records: list[Record]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r in records:
        out.setdefault(r.task_key, []).append(code_tokens(code_only(r.output, r.language)))
    return out


def _figures(out_dir: Path, records: list[Record], temperature: float) -> dict[str, str]:
    from .data.figures import save_figure3

    counts: dict[str, Counter] = {}
    for r in records:
        counts.setdefault(r.language, Counter()).update(code_tokens(code_only(r.output, r.language)))
    # The most frequent tokens per language: raw vocabularies would mostly compare corpus sizes.
    vocab = {lang: {t for t, _ in c.most_common(VOCAB_TOP)} for lang, c in counts.items()}
    return save_figure3(out_dir, Counter(r.language for r in records), Counter(r.task_key for r in records),
                        temperature, vocab, curriculum_order(_task_tokens(records)))


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _snip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
