"""Batching in our training loop: packed (isolated samples, 4D mask) vs length-grouped vs padded.

    python benchmarks/bench_batching.py [--steps 30] [--warmup 3] [--batch-size 8] [--precision bf16]
                                        [--modes packed,length_grouped,padded] [--repeats 2] [--max-length 512]
                                        [--threads 1] [--check-steps 6] [--quick] [--keep DIR]

The same model, data, LoRA settings and optimisation as benchmarks/bench_train.py's "ours" side (the
tiny default model, the synthetic suite's train split in six languages, LoRA r8/a16/dropout 0.1, batch
8, plain mixing, token-mean loss), run once per `data.batching` mode, alternating the modes (A, B, C,
then C, B, A, ...) and keeping the best run of each. Per mode:
  - target tok/s and non-pad tok/s (per wall second and per CPU second of this process, as in
    bench_train.py), and the ratio to the current default (`DataConfig.batching`);
  - padding: the share of the collated (rows x longest row) positions that are padding;
  - attention cells: query-key pairs the attention kernel is given (rows x T^2, the 4D mask does not make
    the kernel skip masked blocks) over the causal pairs the samples need (sum n(n+1)/2): packing trades
    padding for cross-sample cells that are computed and masked away;
  - model TFLOP per CPU second and MFU, counted as in bench_train.py (real tokens only).

Which examples each step sees: `padded` and `packed` walk the same shuffled order (packing changes only
the collation), so their per-step losses agree — exactly at step 1, and afterwards up to LoRA dropout
(the dropout masks follow the tensor shapes, which differ) and float rounding. `length_grouped` sorts
chunks of 32 batches by length before cutting them, so its steps hold other examples (the same ones
over a chunk) and its per-step losses are not comparable one to one. The check at the end runs padded
and packed for `--check-steps` steps in fp32 with LoRA dropout 0, where the two must agree to rounding,
and prints the max abs difference of the per-step losses for it and for the timed runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train as bt  # noqa: E402  (workspace, our runs, FLOPs, timing)


def collated_shapes(cfg, batches: list[list]) -> list[dict]:
    """Per step: rows and row length of the collated batch, as the loop's collate function builds it."""
    from mftcoder_pp.train.batching import collator
    from mftcoder_pp.train.setup import tokenizer_for

    collate = collator(cfg.data.batching, tokenizer_for(cfg).pad_token_id, cfg.data.max_length)
    out = []
    for b in batches:
        rows, T = collate(b).input_ids.shape
        out.append({"rows": rows, "T": T})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--precision", default="bf16", help="bf16 or fp32")
    ap.add_argument("--modes", default="packed,length_grouped,padded")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default); see bench_train.py")
    ap.add_argument("--check-steps", type=int, default=6,
                    help="steps of the fp32, dropout-0 padded-vs-packed loss check (0: skip)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 steps after 1 warm-up, one repeat")
    ap.add_argument("--keep", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats, args.check_steps = 3, 1, 1, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 1 or args.steps < 2:
        ap.error("--warmup >= 1 and --steps >= 2")
    from mftcoder_pp.train.config import DataConfig

    default = DataConfig.__dataclass_fields__["batching"].default
    modes = args.modes.split(",")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-batching-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        bt.header(args, "Batching in our training loop: packed vs length-grouped vs padded")
        ws = bt.build_workspace(work / "ws")
        shapes = bt.model_shapes(ws["base"])
        per_token, per_pair = bt.flops_per_token_and_sample(shapes)
        total = args.warmup + args.steps
        peak = bt.matmul_peak(torch.bfloat16 if args.precision == "bf16" else torch.float32)
        print(f"{total} optimizer steps per run ({args.warmup} warm-up, {args.steps} timed), batch {args.batch_size}, "
              f"max_length {args.max_length}, {args.precision}; {args.repeats} runs per mode, alternating; "
              f"current default data.batching = {default}\n", flush=True)

        cfgs = {m: bt.our_config(ws, work / "probe", steps=total, batch_size=args.batch_size,
                                 precision=args.precision, batching=m, max_length=args.max_length) for m in modes}
        batches = {m: bt.our_batches(cfgs[m]) for m in modes}
        collated = {m: collated_shapes(cfgs[m], batches[m]) for m in modes}
        runs: dict[str, list[bt.RunResult]] = {m: [] for m in modes}
        for rep in range(args.repeats):
            for m in modes if rep % 2 == 0 else modes[::-1]:
                out = work / "runs" / f"{m}-{rep}"
                shutil.rmtree(out, ignore_errors=True)
                print(f"  {m} run {rep + 1} (load {bt.load()})...", file=sys.stderr, flush=True)
                cfg = dataclasses.replace(cfgs[m], out=str(out))
                r = bt.run_ours(cfg, batches[m])
                runs[m].append(r)
                tm = bt.timed(r, args.warmup)
                print(f"    {tm['wall']:.1f} s wall, {tm['cpu']:.1f} s CPU", file=sys.stderr, flush=True)
                if not args.keep:
                    shutil.rmtree(out, ignore_errors=True)

        best = {m: bt.best_of(runs[m], args.warmup) for m in modes}
        print(f"## Throughput, best of {args.repeats} runs per mode ({args.steps} timed steps each)\n")
        print("| data.batching | wall s (runs) | CPU s (runs) | target tok/s | non-pad tok/s | target tok/CPU-s | "
              "non-pad tok/CPU-s | rows x T per step (mean) | padding | attention cells computed / needed | "
              "model GFLOP/CPU-s | MFU (CPU) |")
        print("|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for m in modes:
            b = best[m]
            window = collated[m][args.warmup:]
            cells = sum(c["rows"] * c["T"] ** 2 for c in window)
            needed = sum(n * (n + 1) // 2 for s in b["window"] for n in s["lengths"])
            positions = sum(c["rows"] * c["T"] for c in window)
            flops = sum(bt.step_flops(s, per_token, per_pair) for s in b["window"])
            rows = sum(c["rows"] for c in window) / len(window)
            T = sum(c["T"] for c in window) / len(window)
            print(f"| {m}{' (default)' if m == default else ''} | {', '.join('%.1f' % w for w in b['walls'])} | "
                  f"{', '.join('%.1f' % c for c in b['cpus'])} | {b['targets'] / b['wall']:.0f} | "
                  f"{b['tokens'] / b['wall']:.0f} | {b['targets'] / b['cpu']:.0f} | {b['tokens'] / b['cpu']:.0f} | "
                  f"{rows:.1f} x {T:.0f} | {1 - b['tokens'] / positions:.1%} | {cells / needed:.2f} | "
                  f"{flops / b['cpu'] / 1e9:.1f} | {flops / b['cpu'] / peak['cpu']:.1%} |")
        if default in modes:
            print(f"\n### Ratios to the current default ({default}); > 1: faster than it\n")
            print("| data.batching | target tok/s (wall) | target tok/CPU-s |")
            print("|---|---:|---:|")
            d = best[default]
            for m in modes:
                b = best[m]
                print(f"| {m} | {(b['targets'] / b['wall']) / (d['targets'] / d['wall']):.2f}x | "
                      f"{(b['targets'] / b['cpu']) / (d['targets'] / d['cpu']):.2f}x |")
            fastest = max(modes, key=lambda m: best[m]["targets"] / best[m]["cpu"])
            print(f"\nfastest per CPU second: {fastest}; per wall second: "
                  f"{max(modes, key=lambda m: best[m]['targets'] / best[m]['wall'])}")

        print("\n## Do the modes train the same thing?\n")
        print("| data.batching | same examples per step as padded | loss at step 1 | mean loss over the run | "
              "max abs diff of per-step losses vs padded |")
        print("|---|---|---:|---:|---:|")
        ref = runs["padded"][-1].losses if "padded" in modes else None
        for m in modes:
            losses = runs[m][-1].losses
            same = "padded" in modes and [[e.input_ids for e in b] for b in batches[m]] == \
                [[e.input_ids for e in b] for b in batches["padded"]]
            diff = max(abs(a - b) for a, b in zip(losses, ref)) if ref is not None else float("nan")
            print(f"| {m} | {'yes' if same else 'no'} | {losses[0]:.4f} | {sum(losses) / len(losses):.4f} | "
                  f"{diff:.4f}{'' if same else ' (different batches: not comparable)'} |")
        if args.check_steps and {"padded", "packed"} <= set(modes):
            check = {}
            for m in ("padded", "packed"):
                cfg = bt.our_config(ws, work / "check" / m, steps=args.check_steps, batch_size=args.batch_size,
                                    precision="fp32", batching=m, max_length=args.max_length)
                lora = dataclasses.replace(cfg.adapter.lora, dropout=0.0)
                cfg = dataclasses.replace(cfg, adapter=dataclasses.replace(cfg.adapter, lora=lora))
                check[m] = bt.run_ours(cfg, bt.our_batches(cfg)).losses
            diff = max(abs(a - b) for a, b in zip(check["padded"], check["packed"]))
            print(f"\ncheck, fp32 and LoRA dropout 0, {args.check_steps} steps: padded vs packed per-step losses "
                  f"differ by at most {diff:.2e} (padded {', '.join('%.4f' % x for x in check['padded'])})")
        print(f"\nload average at end: {bt.load()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
