"""Cost of the MFTCoder++ objective: step time and peak memory against plain LoRA SFT, and each module alone.

    python benchmarks/bench_modules.py [--steps 20] [--warmup 3] [--rounds 2] [--precision fp32,bf16]
                                       [--configs A,B] [--order rotate|alternate] [--threads 1] [--batch 8]
                                       [--max-length 256] [--quick] [--work DIR]
                                       [--diagnostics DIR [--diagnostic-steps 100]]

Workspace (built once, in --work or a temporary directory): the synthetic suite's train split in all six
languages as prepared JSONL (one task per language), a scratch BPE tokenizer trained on it, and a base
model: `build_tiny(TinyModelSpec(), tokenizer)` (the embedded default: Qwen2, hidden 256, 6 layers)
saved with `save_pretrained` beside the tokenizer. Every configuration then trains LoRA (rank 8, the
schema's defaults) on that base with the same data, batch (`--batch` examples per optimizer step, one
micro-batch), `--max-length`, ATDS mixing (per-task Adam states) and precision:

    plain            modules off: plain multitask LoRA SFT
    mftcoder++       HMD (top_layers 6, rank 16, decoupling on) + TIAR (period 5) + DAGG (layers [-1],
                     every 1) + focal
    mftcoder++ dagg/4  the same with DAGG every 4 steps (amortised)
    hmd, tiar, dagg, focal   one module alone (as in mftcoder++)
    dagg/4           DAGG alone, every 4 steps

Method. Each (configuration, round) is a fresh subprocess (`--worker`) that calls
`mftcoder_pp.train.loop.train` for warm-up + steps optimizer steps (log_every 1, no checkpoints, no
TensorBoard). The loop logs once per step; the worker wraps `TrainLogger.log` (in its own process only)
to read the wall clock and the process CPU clock at each call, so the interval between two log calls is
one whole loop iteration (task draw, collate, forward, auxiliary terms, backward, clip, optimizer step,
discriminator step, logging), nothing of the setup or the export. (The loop's own `tokens_per_s` gives
the same wall intervals as Δtokens / tokens_per_s; it is kept as a cross-check.) CPU time is the
robust number on a shared host: with one thread per process it measures the step's work whatever
share of a core the process got, while wall time grows with the machine's load. With ATDS refreshing
π every 50 steps, and all seeds equal, every configuration draws the same tasks and the same batches
for its first 50 steps (checked: the per-step target-token counts must match plain's). Rounds
change the order of the configurations so that drift in the load hits all alike: --order rotate (the
default; round r starts at the r-th configuration, so each takes every position) or alternate (forward,
then backward; the edge configurations then run back to back at the round boundaries). Per step
index, the best (minimum) time over the rounds is kept, then ms/step = the mean over
the timed steps (this amortises periodic costs: TIAR's phases alternate every 5 steps, DAGG every 4
runs on one step in four; a median would hide them), with the wall-time median beside it.
Each training process runs with --threads torch/OpenMP threads (default 1: on a shared, oversubscribed
CPU, spinning OpenMP threads inflate step times several-fold and erratically).
Peak memory: the peak resident set of each training subprocess (`os.wait4` → ru_maxrss, per child:
`getrusage(RUSAGE_CHILDREN)` would report the maximum over all children reaped so far), the median
over the rounds (allocator behaviour moves a single round by up to ~100 MB); it includes the interpreter and the imported libraries (about the same for all),
so the increment over plain is printed too. On CUDA, `torch.cuda.max_memory_allocated` of the run.

--diagnostics DIR: afterwards, a short MFTCoder++ training (all modules on, full fine-tuning of the
random-init tiny base, ATDS refreshed every 10 steps, fp32) for --diagnostic-steps steps, and its
figures written to DIR with `mftcoder_pp.report.training.training_figures` (dpi 90, palette PNGs). A summary of the
logged diagnostics is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LANGS = ("python", "java", "javascript", "cpp", "go", "rust")
HMD = {"enabled": True, "top_layers": 6, "rank": 16, "decoupling": True}
TIAR = {"enabled": True, "period": 5}
DAGG = {"enabled": True, "layers": [-1], "every": 1}
DAGG4 = {**DAGG, "every": 4}
FOCAL = {"enabled": True}
CONFIGS = {
    "plain": {},
    "mftcoder++": {"hmd": HMD, "tiar": TIAR, "dagg": DAGG, "focal": FOCAL},
    "mftcoder++ dagg/4": {"hmd": HMD, "tiar": TIAR, "dagg": DAGG4, "focal": FOCAL},
    "hmd": {"hmd": HMD},
    "tiar": {"tiar": TIAR},
    "dagg": {"dagg": DAGG},
    "dagg/4": {"dagg": DAGG4},
    "focal": {"focal": FOCAL},
}
TARGET = 1.25  # MFTCoder++ step time / plain step time


# ------------------------------------------------------------------------------------------ workspace


def build_workspace(root: Path) -> dict[str, str]:
    """Prepared data (six languages), tokenizer and the saved tiny base; reused when already there."""
    from mftcoder_pp.model.load import TinyModelSpec, build_tiny, load_tokenizer
    from mftcoder_pp.synthetic.suite import generate_suite
    from mftcoder_pp.tokenizer import build_tokenizer

    prepared, tok_dir, base = root / "prepared", root / "tokenizer", root / "base"
    if not (base / "config.json").exists():
        prepared.mkdir(parents=True, exist_ok=True)
        suite = generate_suite(0, splits=("train",))
        for lang in LANGS:
            with (prepared / f"synthesis-{lang}.jsonl").open("w") as f:
                for i, r in enumerate(suite.records("train", lang)):
                    r.meta["prompt_variant"] = i % 3
                    f.write(r.to_json() + "\n")
        cfg = root / "tokenizer.json"
        cfg.write_text(json.dumps({"out": str(tok_dir), "mode": "scratch", "data": [str(prepared)], "kind": "bpe",
                                   "vocab_size_per_language": 800, "min_frequency": 4}))
        build_tokenizer(str(cfg))
        tok = load_tokenizer(tok_dir)
        model = build_tiny(TinyModelSpec(), tok, seed=0)
        model.save_pretrained(base)
        tok.save_pretrained(base)
    return {"prepared": str(prepared), "base": str(base)}


def train_sections(ws: dict, out: Path, modules: dict, steps: int, batch: int, max_length: int,
                   precision: str, **extra) -> dict:
    sections = {"out": str(out), "data": {"prepared": [ws["prepared"]], "max_length": max_length},
                "model": {"path": ws["base"]}, "adapter": {"kind": "lora"},
                "mixing": {"strategy": "atds"}, "optim": {"max_steps": steps, "batch_size": batch},
                "precision": precision, "checkpoint_every": 0, "tensorboard": False, "modules": modules}
    for key, value in extra.items():
        sections[key] = {**sections[key], **value} if isinstance(value, dict) and key in sections else value
    return sections


# --------------------------------------------------------------------------------------------- worker


def worker(spec_path: str) -> None:
    """One configuration in this fresh process; writes per-step wall and CPU seconds to spec["result"]."""
    import resource

    import torch

    from mftcoder_pp.train import logger
    from mftcoder_pp.train.loop import train

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    cfg_path = Path(spec["config"])
    # The loop logs every step (log_every 1); a clock read at each log call brackets one whole loop
    # iteration. Wrapping the method in this process only leaves the library untouched.
    marks: list[tuple[float, float]] = []
    log = logger.TrainLogger.log

    def timed_log(self, record):
        marks.append((time.perf_counter(), time.process_time()))
        return log(self, record)

    logger.TrainLogger.log = timed_log
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train(str(cfg_path), progress=False)
    out = Path(json.loads(cfg_path.read_text())["out"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    nan = float("nan")
    # step 0 has no previous mark (it is a warm-up step anyway); the loop's own tokens_per_s gives
    # the same wall intervals (Δtokens / tokens_per_s), kept as a cross-check
    wall = [nan] + [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    cpu = [nan] + [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    toks, loop_wall, prev = [], [], 0
    for r in rows:
        toks.append(r["tokens"] - prev)
        loop_wall.append(toks[-1] / r["tokens_per_s"] if r["tokens_per_s"] > 0 else nan)
        prev = r["tokens"]
    Path(spec["result"]).write_text(json.dumps({
        "wall": wall, "cpu": cpu, "loop_wall": loop_wall, "tokens": toks, "tasks": [r["task"] for r in rows],
        "rss_imports_kb": rss_before, "threads": torch.get_num_threads(),
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None}))


def run_config(ws: dict, work: Path, name: str, rnd: int, args, precision: str) -> dict:
    tag = f"{name.replace(' ', '_').replace('/', '-').replace('+', 'p')}-{precision}-r{rnd}"
    out = work / "runs" / tag
    cfg = work / "configs" / f"{tag}.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps(train_sections(ws, out, CONFIGS[name], args.warmup + args.steps, args.batch,
                                             args.max_length, precision), indent=1))
    spec = work / "configs" / f"{tag}.spec.json"
    result = work / "configs" / f"{tag}.result.json"
    spec.write_text(json.dumps({"config": str(cfg), "result": str(result), "threads": args.threads}))
    proc = subprocess.Popen([sys.executable, __file__, "--worker", str(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_thread_env(args.threads))
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"{name} ({precision}) failed with exit code {proc.returncode}")
    res = json.loads(result.read_text())
    res["rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return res


# ---------------------------------------------------------------------------------------------- bench


def bench(ws: dict, work: Path, args) -> None:
    names = args.configs or (list(CONFIGS) if not args.quick else ["plain", "mftcoder++"])
    import torch

    print(f"host: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    print(f"load average at start: {_load()}")
    print(f"batch {args.batch} (one micro-batch), max_length {args.max_length}, ATDS mixing, LoRA r8; "
          f"{args.warmup} warm-up + {args.steps} timed steps; {args.rounds} round(s), order {args.order}; "
          f"{args.threads} torch thread(s) per training process\n")
    for precision in args.precision:
        results: dict[str, list[dict]] = {n: [] for n in names}
        for rnd in range(args.rounds):
            if args.order == "rotate":  # round r starts at the r-th configuration: each takes every position
                order = names[rnd % len(names):] + names[:rnd % len(names)]
            else:  # alternate: forward, then backward
                order = names if rnd % 2 == 0 else names[::-1]
            for name in order:
                t0 = time.monotonic()
                res = run_config(ws, work, name, rnd, args, precision)
                results[name].append(res)
                w, c = res["wall"][args.warmup:], res["cpu"][args.warmup:]
                print(f"  [{precision} round {rnd + 1}] {name:18s} wall {1000 * statistics.mean(w):7.1f} ms/step, "
                      f"CPU {1000 * statistics.mean(c):7.1f} ms/step, peak RSS {res['rss_mb']:6.0f} MB, "
                      f"subprocess {time.monotonic() - t0:5.1f} s, load {_load()}", flush=True)
        report(results, names, precision, args)
    print(f"\nload average at end: {_load()}")


def report(results: dict[str, list[dict]], names: list[str], precision: str, args) -> None:
    w = args.warmup
    ref_tokens = results["plain"][0]["tokens"][w:]
    summary = {}
    for name in names:
        runs = results[name]
        n = len(runs[0]["wall"])
        wall = [min(r["wall"][i] for r in runs) for i in range(w, n)]  # best of the rounds, per step
        cpu = [min(r["cpu"][i] for r in runs) for i in range(w, n)]
        cuda = [r["cuda_peak_mb"] for r in runs if r["cuda_peak_mb"] is not None]
        per_round = [1000 * statistics.mean(r["cpu"][w:]) for r in runs]
        summary[name] = {"spread": (min(per_round), max(per_round)),
                         "wall": 1000 * statistics.mean(wall), "wall_median": 1000 * statistics.median(wall),
                         "cpu": 1000 * statistics.mean(cpu), "rss": statistics.median(r["rss_mb"] for r in runs),
                         "cuda": min(cuda) if cuda else None,
                         "same": all(r["tokens"][w:] == ref_tokens for r in runs)}
    plain = summary["plain"]
    gaps = [abs(r["loop_wall"][i] - r["wall"][i]) / r["wall"][i] for rs in results.values() for r in rs
            for i in range(w, len(r["wall"]))]
    print(f"\n(cross-check: the loop's tokens_per_s intervals match the clock marks within "
          f"{100 * statistics.median(gaps):.2f}% (median), {100 * max(gaps):.2f}% (max))")
    print(f"\n### {precision}: batch {args.batch}, max_length {args.max_length}, "
          f"{statistics.mean(ref_tokens):.0f} target tokens per step on average; per step the best of "
          f"{args.rounds} round(s), then the mean over {args.steps} steps; {results['plain'][0]['threads']} "
          f"torch thread(s)\n")
    cuda_col = plain["cuda"] is not None
    print("| config | wall ms/step | (median) | x plain | CPU ms/step | x plain | CPU ms/step per round | "
          "peak RSS MB (median) | x plain | RSS over plain MB |" + (" CUDA peak MB | x plain |" if cuda_col else "")
          + " same batches |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if cuda_col else "") + "---|")
    for name in names:
        s = summary[name]
        row = (f"| {name} | {s['wall']:.0f} | {s['wall_median']:.0f} | {s['wall'] / plain['wall']:.2f} | "
               f"{s['cpu']:.0f} | {s['cpu'] / plain['cpu']:.2f} | {s['spread'][0]:.0f}–{s['spread'][1]:.0f} | "
               f"{s['rss']:.0f} | {s['rss'] / plain['rss']:.2f} | "
               f"{s['rss'] - plain['rss']:+.0f} |")
        if cuda_col:
            row += f" {s['cuda']:.0f} | {s['cuda'] / plain['cuda']:.2f} |"
        print(row + f" {'yes' if s['same'] else 'NO'} |")
    full = summary.get("mftcoder++")
    if full:
        for key, what in (("cpu", "CPU time"), ("wall", "wall time")):
            r = full[key] / plain[key]
            line = (f"\nMFTCoder++ / plain, {what} per step: {r:.2f}x (target <= {TARGET}x): "
                    f"{'met' if r <= TARGET else 'NOT met'}")
            if "mftcoder++ dagg/4" in summary:
                line += f"; with DAGG every 4: {summary['mftcoder++ dagg/4'][key] / plain[key]:.2f}x"
            print(line)
        extra = {n: summary[n]["cpu"] - plain["cpu"] for n in ("hmd", "tiar", "dagg", "dagg/4", "focal")
                 if n in summary}
        if extra:
            alone = sum(extra[n] for n in ("hmd", "tiar", "dagg", "focal") if n in extra)
            print("CPU ms/step added by each module alone: " + ", ".join(f"{n} {v:+.0f}" for n, v in extra.items())
                  + f"; hmd+tiar+dagg+focal {alone:+.0f} vs mftcoder++ {full['cpu'] - plain['cpu']:+.0f}")


# ---------------------------------------------------------------------------------------- diagnostics


def diagnostics(ws: dict, work: Path, fig_dir: Path, steps: int, args) -> None:
    from mftcoder_pp.report.training import read_metrics, training_figures

    out = work / "runs" / "diagnostics"
    cfg = work / "configs" / "diagnostics.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    modules = {"hmd": HMD, "tiar": {**TIAR, "buffer": 256}, "dagg": DAGG, "focal": FOCAL}
    sections = train_sections(ws, out, modules, steps, args.batch, args.max_length, "fp32",
                              adapter={"kind": "full"}, mixing={"strategy": "atds", "atds": {"refresh_every": 10}},
                              optim={"lr_range": [3e-4, 1e-3]})
    cfg.write_text(json.dumps(sections, indent=1))
    print(f"\n## diagnostics: {steps} steps, all modules on, full fine-tuning, fp32 "
          f"(modules: {json.dumps(sections['modules'])})")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "import sys; from mftcoder_pp.train.loop import train; "
                           "train(sys.argv[1], progress=False)", str(cfg)], capture_output=True, text=True,
                          env=_thread_env(args.threads))
    if proc.returncode:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit("diagnostics run failed")
    print(f"trained in {time.monotonic() - t0:.0f} s; load {_load()}")
    written = training_figures(out / "metrics.jsonl", fig_dir, dpi=90, palette=True)
    for key, path in written.items():
        print(f"  {key}: {path} ({Path(path).stat().st_size // 1024} KB)")
    summarise(read_metrics(out / "metrics.jsonl"), json.loads((out / "train_config.json").read_text()))


def summarise(rows: list[dict], info: dict) -> None:
    """Numbers behind the figures: first vs last fifth of the run."""
    k = len(info["tasks"])
    n = max(1, len(rows) // 5)
    head, tail = rows[:n], rows[-n:]

    def mean(rs, key):
        vals = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
        return statistics.mean(vals) if vals else float("nan")

    print(f"\ntasks {k} (chance 1/{k} = {1 / k:.3f}); first {n} vs last {n} logged steps:")
    for key in ("loss", "dagg", "adv", "align", "decoupling", "discriminator_accuracy", "tiar_accuracy",
                "discriminator_loss"):
        print(f"  {key:24s} {mean(head, key):8.4f} -> {mean(tail, key):8.4f}")
    gates: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        for lang, g in (r.get("gate") or {}).items():
            gates.setdefault(lang, []).append((r["step"], g))
    print("  gate per language (first logged -> last logged, n points): " + ", ".join(
        f"{lang} {v[0][1]:.3f}->{v[-1][1]:.3f} ({len(v)})" for lang, v in sorted(gates.items())))
    last_pi = rows[-1].get("task_probability") or {}
    print("  final π: " + ", ".join(f"{t} {p:.3f}" for t, p in last_pi.items()))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["task"]] = counts.get(r["task"], 0) + 1
    print("  steps per task: " + ", ".join(f"{t} {c}" for t, c in sorted(counts.items())))


def _thread_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    ap.add_argument("--rounds", type=int, default=2, help="runs per configuration (see --order); the best per step is kept")
    ap.add_argument("--order", choices=("rotate", "alternate"), default="rotate",
                    help="configuration order per round: rotate (round r starts at the r-th) or alternate "
                         "(forward, then backward)")
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16, fp16")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per training process (1: robust on a shared host; spinning OpenMP "
                         "threads of an oversubscribed CPU inflate step times several-fold)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--configs", type=lambda v: [c.strip() for c in v.split(",") if c.strip()],
                    help=f"comma-separated subset of: {', '.join(CONFIGS)} (plain is always included)")
    ap.add_argument("--quick", action="store_true", help="plain and mftcoder++ only, 1 round, 6 steps (a smoke test)")
    ap.add_argument("--work", help="workspace directory (kept; default: a temporary directory)")
    ap.add_argument("--no-bench", action="store_true", help="skip the timing (e.g. only --diagnostics)")
    ap.add_argument("--diagnostics", help="also train a short all-modules run and write its figures here")
    ap.add_argument("--diagnostic-steps", type=int, default=100)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    args.precision = [p.strip() for p in args.precision.split(",") if p.strip()]
    if args.configs:
        unknown = [c for c in args.configs if c not in CONFIGS]
        if unknown:
            raise SystemExit(f"--configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
        args.configs = ["plain"] + [c for c in args.configs if c != "plain"]
    if args.quick:
        args.steps, args.warmup, args.rounds = 6, 2, 1
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the first step has no previous clock mark)")
    if args.steps + args.warmup > 50:
        print("note: ATDS refreshes π at step 50; beyond it configurations may draw different batches")
    with tempfile.TemporaryDirectory(prefix="bench_modules_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        ws = build_workspace(work / "workspace")
        print(f"workspace ready in {time.monotonic() - t0:.0f} s")
        if not args.no_bench:
            bench(ws, work, args)
        if args.diagnostics:
            diagnostics(ws, work, Path(args.diagnostics), args.diagnostic_steps, args)


if __name__ == "__main__":
    main()
