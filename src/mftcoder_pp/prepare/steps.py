"""The filtering and rewriting steps of `mftpp prepare`, in the order they run. Each takes the `Pass`
(the records so far, with what earlier steps removed) and its own settings, and leaves the step's
counts and time in it. A step that removes records says why, record by record (`Problem`): the
report quotes them."""

from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from ..data.anonymise import anonymise
from ..data.codetokens import code_tokens
from ..data.decontaminate import BenchmarkText, ContaminationIndex
from ..data.dedup import content_key, exact_duplicates, near_duplicates
from ..data.fences import code_blocks
from ..data.normalise import normalise_code, normalise_text
from ..data.readers import Problem, snip
from ..data.records import Record
from ..data.syntax import check_example
from .config import DecontaminationConfig, NearDedupConfig

ANONYMISE_STATUS = {"ok": "renamed", "unchanged": "nothing to rename", "parse error": "skipped (does not parse alone)",
                    "reparse failed": "reparse failed (original kept)"}
SYNTHETIC_BENCHMARK_PREFIX = "synthetic"  # benchmarks made from the synthetic suite's held-out splits


@dataclass
class Pass:
    """The records as they go through the steps: what is kept, what each step removed (step,
    problem, record id) and each step's counts and seconds."""
    records: list[Record] = field(default_factory=list)
    rejected: list[tuple[str, Problem, str | None]] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    last: float = field(default_factory=time.monotonic)

    def done(self, step: str) -> None:
        """Record the counts after `step` and its time."""
        now = time.monotonic()
        self.steps.append({**counts(step, self.records), "seconds": round(now - self.last, 3)})
        self.last = now

    def drop(self, step: str, bad: dict[int, Problem]) -> None:
        """Remove the records at the indices of `bad`, each with its problem, and close the step."""
        for i, problem in bad.items():
            self.rejected.append((step, problem, self.records[i].id))
        self.records = [r for i, r in enumerate(self.records) if i not in bad]
        self.done(step)


def counts(step: str, records: list[Record]) -> dict:
    return {"step": step, "total": len(records),
            "by_task": dict(sorted(Counter(r.task_key for r in records).items())),
            "by_language": dict(sorted(Counter(r.language for r in records).items()))}


def check_syntax(p: Pass) -> None:
    """Drop examples whose code does not parse (tree-sitter; bodies and methods under their wrappers)."""
    bad = {}
    for i, rec in enumerate(p.records):
        how, error = check_example(rec.output, rec.input, rec.language)
        if how is None:
            bad[i] = Problem(rec.source or rec.id, "syntax error", f"{rec.language}: {error}", snip(rec.output))
    p.drop("syntax", bad)


def normalise(p: Pass) -> None:
    """Lexical normalisation of instructions and code (line ends, trailing spaces, indentation)."""
    for rec in p.records:
        rec.instruction = normalise_text(rec.instruction)
        rec.input = normalise_code(rec.input, rec.language, final_newline=False) if rec.input.strip() else ""
        rec.output = normalise_code(rec.output, rec.language)
    p.done("normalise")


def rename_identifiers(p: Pass) -> tuple[dict, dict[int, str]]:
    """Anonymise locals and parameters of code-only outputs. Returns the counts per outcome and the
    outputs as they were before (by id(record)): decontamination compares the benchmark's names."""
    stats: Counter = Counter()
    before: dict[int, str] = {}
    for rec in p.records:
        if code_blocks(rec.output):
            stats["skipped (chat answer with prose)"] += 1
            continue
        result = anonymise(rec.output, rec.language, keep=(rec.entry_point,) if rec.entry_point else ())
        stats[ANONYMISE_STATUS[result.status]] += 1
        if result.status == "ok":
            before[id(rec)] = rec.output
            rec.output = result.code
            rec.meta["anonymised"] = len(result.renamed)
    p.done("anonymise")
    return dict(stats), before


def drop_exact_duplicates(p: Pass) -> None:
    recs = p.records
    dups = exact_duplicates([content_key(r.input, r.output) for r in recs])
    p.drop("exact_dedup", {i: Problem(recs[i].source or recs[i].id, "exact duplicate",
                                      f"same input and output as {recs[j].id} ({recs[j].source})", snip(recs[i].output))
                           for i, j in dups.items()})


def drop_near_duplicates(p: Pass, nd: NearDedupConfig, seed: int) -> None:
    """MinHash/LSH over token shingles, within each language; the later of a pair goes."""
    recs, bad = p.records, {}
    by_lang: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        by_lang.setdefault(r.language, []).append(i)
    for _, idx in sorted(by_lang.items()):
        tokens = [code_tokens(recs[i].input + "\n" + recs[i].output) for i in idx]
        for a, (b, sim) in near_duplicates(tokens, nd.threshold, nd.num_perm, nd.shingle, seed).items():
            i, j = idx[a], idx[b]
            bad[i] = Problem(recs[i].source or recs[i].id, "near duplicate",
                             f"Jaccard {sim:.2f} with {recs[j].id} ({recs[j].source})", snip(recs[i].output))
    p.drop("near_dedup", bad)


def decontaminate(p: Pass, dc: DecontaminationConfig, synthetic_sources: set[str],
                  before_anonymise: dict[int, str]) -> dict:
    """Drop examples that share enough n-grams with a benchmark's prompt, reference or test; returns
    the settings and what was removed, for the report."""
    names = tuple(dc.benchmarks) if dc.benchmarks is not None else all_benchmarks()
    index = benchmark_index(names, dc.ngram, dc.boilerplate_tasks, dc.min_overlap, dc.min_shared)
    # The synthetic suite's held-out splits are disjoint from its training pools by construction
    # (combination keys), while its families share code templates by design: its own records are
    # matched against every benchmark but those.
    own_suite = frozenset(b for b in names if b.startswith(SYNTHETIC_BENCHMARK_PREFIX))
    bad, removed = {}, []
    for i, rec in enumerate(p.records):
        exclude = own_suite if rec.meta.get("source") in synthetic_sources else frozenset()
        output = before_anonymise.get(id(rec), rec.output)  # benchmark texts keep their names
        m = index.match(rec.instruction + "\n" + rec.input + "\n" + output, exclude)
        if m is not None:
            bad[i] = Problem(rec.source or rec.id, "contaminated", m.describe(), snip(rec.output))
            removed.append({"id": rec.id, "where": rec.source, **asdict(m)})
    p.drop("decontaminate", bad)
    return {"ngram": dc.ngram, "min_overlap": dc.min_overlap, "min_shared": dc.min_shared,
            "boilerplate_tasks": dc.boilerplate_tasks, "boilerplate_ngrams": len(index.boilerplate),
            "benchmarks": list(names), "removed": removed,
            "not_matched": {src: sorted(own_suite) for src in sorted(synthetic_sources)} if own_suite else {}}


def all_benchmarks() -> tuple[str, ...]:
    from ..benchmarks import REGISTRY

    return tuple(sorted(REGISTRY))


@functools.lru_cache(maxsize=4)
def benchmark_index(names: tuple[str, ...], n: int, boilerplate_tasks: int, min_overlap: float,
                    min_shared: int) -> ContaminationIndex:
    """The n-gram index of the benchmarks' prompts, references and tests (cached: building it for
    every registered benchmark takes seconds)."""
    from ..benchmarks import get_benchmark

    texts = [BenchmarkText(name, t.task_id, f, getattr(t, f)) for name in names for t in get_benchmark(name).tasks()
             for f in ("prompt", "reference", "test")]
    return ContaminationIndex(texts, n=n, boilerplate_tasks=boilerplate_tasks, min_overlap=min_overlap,
                              min_shared=min_shared)

