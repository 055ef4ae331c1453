"""Summary metrics of an evaluation, computed only from the per-sample results and the samples.

- pass@k: unbiased estimator, reported only for the k that every task supports (n >= k).
- fpr: the paper's "functional pass rate": share of all samples that pass every test.
- test_pass_rate: mean over samples of (test cases passed / test cases), the partial credit that
  differs from pass@1 (languages whose tests cannot be split count the whole test as one case).
- rsr: "run success rate": share of samples that compile and run to the end of the tests or fail
  only on an assertion (status passed or failed).
- exact_match, bleu, codebleu: completion against the benchmark's reference completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict

from .metrics import bleu, exact_match, pass_at_k_summary
from .metrics.text import CODEBLEU_LANGUAGES

RUN_OK = ("passed", "failed")


def codebleu_by_language(samples: list, tasks: dict) -> dict[str, dict | None]:
    """CodeBLEU of every sample against its task's reference, per language. It needs no execution
    result, so evaluate() computes it while the programs run."""
    pairs: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for s in samples:
        lang = tasks[s.task_id].language
        pairs[lang][0].append(s.completion)
        pairs[lang][1].append(tasks[s.task_id].reference)
    return {lang: codebleu_isolated(p, r, lang) if lang in CODEBLEU_LANGUAGES else None
            for lang, (p, r) in pairs.items()}


def summarise(bench, results: list[dict], tasks: dict, samples: list, ks, *, run: dict, settings: dict,
              generation: dict | None, codebleu: dict[str, dict | None] | None = None) -> dict:
    """The summary; `codebleu` (per language, from codebleu_by_language over the same samples) is
    computed here when not given."""
    completions = {(s.task_id, s.completion_id): s.completion for s in samples}
    order = {tid: i for i, tid in enumerate(tasks)}
    expected = {(s.task_id, s.completion_id) for s in samples if _in_shard(order[s.task_id], run)}
    got = {(r["task_id"], r["completion_id"]) for r in results}
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_lang[r["language"]].append(r)
    if codebleu is None:
        done = [s for s in samples if (s.task_id, s.completion_id) in got]
        codebleu = codebleu_by_language(done, tasks)
    summary = {
        "benchmark": bench.name,
        "complete": expected <= got,
        "missing": len(expected - got),
        **_block(results, tasks, completions, ks),
        # CodeBLEU is per language; a block that mixes languages reports it per language only.
        "codebleu": codebleu.get(next(iter(by_lang))) if len(by_lang) == 1 else None,
        "per_language": {lang: {**_block(rows, tasks, completions, ks), "codebleu": codebleu.get(lang)}
                         for lang, rows in sorted(by_lang.items())} if len(by_lang) > 1 else None,
        "known_issues": {r["task_id"]: {"issue": r["known_issue"], "status": r["status"]}
                         for r in results if r.get("known_issue")},
        "settings": settings,
        "generation": generation,
        "run": run,
    }
    if settings.get("reduced_isolation"):
        summary["warning"] = "bubblewrap was not available: programs ran with resource limits only (no filesystem or network isolation)"
    return summary


def _in_shard(task_index: int, run: dict) -> bool:
    if run.get("shard_index") is None:
        return True
    return task_index % run["num_shards"] == run["shard_index"]


def _block(rows: list[dict], tasks: dict, completions: dict, ks) -> dict:
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        per_task[r["task_id"]][0] += 1
        per_task[r["task_id"]][1] += int(r["passed"])
    n = len(rows)
    preds = [completions[(r["task_id"], r["completion_id"])] for r in rows]
    refs = [tasks[r["task_id"]].reference for r in rows]
    return {
        "num_tasks": len(per_task),
        "num_samples": n,
        "samples_per_task": [min(v[0] for v in per_task.values()), max(v[0] for v in per_task.values())] if per_task else None,
        "pass@k": pass_at_k_summary({t: (v[0], v[1]) for t, v in per_task.items()}, ks),
        "status_counts": dict(Counter(r["status"] for r in rows)),
        "fpr": sum(r["passed"] for r in rows) / n if n else None,
        "test_pass_rate": sum(r["tests_passed"] / max(1, r["tests_total"]) for r in rows) / n if n else None,
        "rsr": sum(r["status"] in RUN_OK for r in rows) / n if n else None,
        "exact_match": exact_match(preds, refs) if n else None,
        "bleu": bleu(preds, refs) if n else None,
    }


def codebleu_isolated(predictions: list[str], references: list[str], language: str) -> dict | None:
    """CodeBLEU in a child process with PYTHONHASHSEED=0: the codebleu package orders its dataflow
    through a set, so its score depends on the hash seed; a fixed seed makes runs reproducible."""
    payload = json.dumps({"p": predictions, "r": references, "l": language})
    code = ("import json,sys; from mftcoder_pp.metrics.text import codebleu; d=json.load(sys.stdin); "
            "print(json.dumps(codebleu(d['p'], d['r'], d['l'])))")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    res = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "codebleu failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])
