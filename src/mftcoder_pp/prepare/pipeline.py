"""`mftpp prepare CONFIG`: raw sources -> canonical JSONL, one file per task, plus a report.

Steps, in order (each but read can be switched off in the config): read (every source, every
schema) -> syntax check (tree-sitter) -> lexical normalisation -> identifier anonymisation (off by
default) -> exact dedup -> near dedup (MinHash/LSH) -> decontamination against the evaluation
benchmarks -> write `<task>-<language>.jsonl`, `report.json`, `report.md` and the Figure 3 PNGs.

Bad input (a malformed line, invalid UTF-8, a missing field, an unknown language, an empty output)
is counted and reported with file:line; with strict=True the first one stops the run with a
`PrepareError` (a ValueError) naming file:line. Filters (syntax, duplicates, contamination) never
stop a run: they are what preprocessing is for, and they are reported the same way.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from ..config import ConfigError, check_output_dir, load_config
from ..data.codetokens import code_tokens
from ..data.fences import code_only
from ..data.readers import Problem, SourceError
from ..data.records import Record
from ..data.sampling import curriculum_order, temperature_probabilities
from ..provenance import provenance
from . import steps as S
from .config import MBPP_DISPLAY, STEPS, PrepareConfig, PrepareError
from .sources import read, source_path

VOCAB_TOP = 200  # tokens per language compared in Figure 3c


def prepare(config_path: str, out: str | None = None, strict: bool = False) -> dict:
    """Run the preprocessing described by a YAML config; returns the report (also written to out/)."""
    cfg = load_config(config_path, PrepareConfig)
    return run_prepare(cfg, out=out or cfg.out, base_dir=Path(config_path).resolve().parent, strict=strict,
                       config_path=str(config_path))


def run_prepare(cfg: PrepareConfig, out: str, base_dir: Path = Path("."), strict: bool = False,
                config_path: str = "<config>") -> dict:
    start = time.monotonic()
    out_dir = Path(out)
    # Every source is found before any is read: a typo in the last path must not cost a long read.
    paths = [source_path(src, base_dir, f"{config_path}: sources[{i}].path") for i, src in enumerate(cfg.sources)]
    check_output_dir(out_dir, f"{config_path}: out")

    p = S.Pass(last=start)
    sources = read_sources(p, cfg, paths, strict, config_path)
    if cfg.steps.syntax:
        S.check_syntax(p)
    if cfg.steps.normalise:
        S.normalise(p)
    anon_stats, before_anonymise = S.rename_identifiers(p) if cfg.steps.anonymise else (None, {})
    if cfg.steps.exact_dedup:
        S.drop_exact_duplicates(p)
    if cfg.steps.near_dedup:
        S.drop_near_duplicates(p, cfg.near_dedup, cfg.seed)
    decon = None
    if cfg.steps.decontaminate:
        synthetic_sources = {s.label for s in cfg.sources if s.format == "synthetic"}
        decon = S.decontaminate(p, cfg.decontamination, synthetic_sources, before_anonymise)

    outputs = write_records(out_dir, p.records, cfg.seed)
    report = build_report(cfg, config_path, strict, p, sources, outputs, decon, anon_stats)
    if cfg.figures and p.records:
        report["figures"] = figures(out_dir, p.records, cfg.temperature)
    report["out"] = str(out_dir)
    report["seconds"] = round(time.monotonic() - start, 2)
    from ..report.prepare import write_report

    write_report(out_dir, report)
    return report


def read_sources(p: S.Pass, cfg: PrepareConfig, paths: list[Path | None], strict: bool, config_path: str) -> list[dict]:
    """Read every source into `p` (problems are rejected, or raised when strict); one summary per source."""
    sources = []
    for i, (src, path) in enumerate(zip(cfg.sources, paths)):
        n_read = bad = 0
        try:
            for item in read(src, path, cfg.seed):
                n_read += 1
                if isinstance(item, Problem):
                    bad += 1
                    if strict:
                        raise PrepareError(str(item))
                    p.rejected.append(("read", item, None))
                else:
                    p.records.append(item)
        except SourceError as exc:
            raise ConfigError(f"{config_path}: sources[{i}].path: {exc}") from None
        if n_read == 0:  # an empty export is a mistake to report, not a source that happens to add nothing
            raise ConfigError(f"{config_path}: sources[{i}].path: {src.path}: holds no rows (an empty file)")
        sources.append({"name": src.label, "format": src.format,
                        "path": src.path or (MBPP_DISPLAY if src.format == "mbpp" else src.format),
                        "read": n_read, "rejected_on_read": bad})
    p.done("read")
    return sources


def task_file(rec: Record) -> str:
    return f"{rec.task}-{rec.language}.jsonl"


def write_records(out_dir: Path, records: list[Record], seed: int) -> dict[str, int]:
    """One JSONL file per task, records in input order; each gets its prompt-template variant."""
    from ..data.prompts import variant_for

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


def build_report(cfg: PrepareConfig, config_path: str, strict: bool, p: S.Pass, sources: list[dict],
                 outputs: dict[str, int], decon: dict | None, anon_stats: dict | None) -> dict:
    records, rejected, steps = p.records, p.rejected, p.steps
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
    sizes = dict(steps[-1]["by_task"])
    return {
        "created_by": provenance(config_path=str(config_path), config=asdict(cfg), seed=cfg.seed, strict=strict),
        "totals": {"read": steps[0]["total"] + sum(1 for s, _, _ in rejected if s == "read"),
                   "kept": len(records), "rejected": len(rejected)},
        "steps": steps,
        "steps_off": [s for s in STEPS[1:] if not getattr(cfg.steps, s)],
        "sources": sources,
        "outputs": outputs,
        "rejected": by_reason,
        "removed": [{"step": s, "reason": pr.reason, "where": pr.where, "detail": pr.detail, "id": i}
                    for s, pr, i in rejected],
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


def figures(out_dir: Path, records: list[Record], temperature: float) -> dict[str, str]:
    from ..report.prepare_figures import save_figure3

    counts: dict[str, Counter] = {}
    for r in records:
        counts.setdefault(r.language, Counter()).update(code_tokens(code_only(r.output, r.language)))
    # The most frequent tokens per language: raw vocabularies would mostly compare corpus sizes.
    vocab = {lang: {t for t, _ in c.most_common(VOCAB_TOP)} for lang, c in counts.items()}
    return save_figure3(out_dir, Counter(r.language for r in records), Counter(r.task_key for r in records),
                        temperature, vocab, curriculum_order(_task_tokens(records)))
