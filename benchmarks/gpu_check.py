"""One real-size check of the GPU recipe on one GPU: memory and throughput, MFTCoder++ against plain LoRA.

    python benchmarks/gpu_check.py --prepared DIR --tokenizer DIR [--steps 10] [--micro-batch 8]
                                   [--variants mftcoder++,plain] [--out DIR]

Builds Qwen2.5-Coder-1.5B's architecture (`model.load.QWEN2_5_CODER_1_5B`: 1.54B parameters, vocabulary
151,936) with random bf16 weights, saves it, and runs `mftpp train` on it with
configs/train/gpu_qwen2.5-coder-1.5b.yaml as shipped (global batch 64, sequence 2048, LoRA r8, bf16,
gradient checkpointing, phase I python then phase II, ATDS, per-task optimizers), changing only the paths,
the step count and the micro-batch (`--micro-batch` rows per forward, 64 / micro-batch accumulation
steps). The prepared examples are short, and packing cannot be used (the modules need one example per
row), so the check first writes long examples: each keeps a record's prompt and concatenates the
responses of its task's records until it is longer than the sequence, so every row is 2048 positions
(truncated) and a step really is 64 x 2048. Variants, each in a fresh process (clean peak-memory counters):

    mftcoder++   the recipe: HMD-Fusion + TIAR + DAGG (every 4) + focal
    plain        the same with every module off (plain multitask LoRA SFT)

Reported per variant: peak GPU memory allocated and reserved by PyTorch, the mean step time over the
steps after the first two (compilation/allocator warm-up), positions per second (64 x 2048 / step
time) and the loop's own target tokens per second (response tokens only), side by side with the ratio.
The weights are random, so losses mean nothing; the numbers are about memory and speed.
`--tiny` runs the same steps on the CPU with a 2-layer, 64-wide model of the architecture, sequence 256,
batch 8 (a smoke run of this script; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "train" / "gpu_qwen2.5-coder-1.5b.yaml"
MODULES_OFF = {"hmd": {"enabled": False}, "tiar": {"enabled": False}, "dagg": {"enabled": False},
               "focal": {"enabled": False}}


TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 8192}


def build_model(path: Path, tiny: bool) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from mftcoder_pp.model.load import QWEN2_5_CODER_1_5B

    if (path / "config.json").exists():
        return
    torch.manual_seed(0)
    arch = {**QWEN2_5_CODER_1_5B, **(TINY if tiny else {})}
    with torch.device("cpu" if tiny else "cuda"):
        model = Qwen2ForCausalLM(Qwen2Config(**arch, dtype="bfloat16")).to(torch.bfloat16)
    model.save_pretrained(str(path))
    del model
    torch.cuda.empty_cache()


def long_records(prepared: Path, out: Path, chars: int) -> Path:
    """A prepared directory whose every example is longer than `chars` characters (see the docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(prepared.glob("*.jsonl")):
        rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
        with open(out / src.name, "w", encoding="utf-8") as fh:
            for i, row in enumerate(rows):
                parts, n, j = [], 0, i
                while n < chars:
                    parts.append(rows[j % len(rows)]["output"])
                    n, j = n + len(parts[-1]), j + 1
                fh.write(json.dumps({**row, "output": "\n".join(parts)}) + "\n")
    return out


def worker(args) -> dict:
    import torch

    from mftcoder_pp.cli import main

    cfg = yaml.safe_load(RECIPE.read_text())
    cfg.update(out=str(Path(args.work) / f"run-{args.variant}"), checkpoint_every=0, tensorboard=False)
    cfg["model"].update(path=str(Path(args.work) / "model"), tokenizer=args.tokenizer)
    cfg["data"].update(prepared=[str(Path(args.work) / "long")])
    cfg["optim"].update(max_steps=args.steps, grad_accum=cfg["optim"]["batch_size"] // args.micro_batch)
    if args.tiny:
        cfg["data"]["max_length"] = 256
        cfg["optim"].update(batch_size=8, grad_accum=8 // args.micro_batch)
    if args.variant == "plain":
        cfg["modules"] = MODULES_OFF
    path = Path(args.work) / f"{args.variant}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cuda = torch.cuda.is_available() and not args.tiny
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    rc = main(["train", str(path), "--quiet"])
    wall = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"mftpp train exited with {rc}")
    metrics = [json.loads(line) for line in open(Path(cfg["out"]) / "metrics.jsonl")]
    steps = [m for m in metrics if "tokens_per_s" in m]
    secs = [(b["tokens"] - a["tokens"]) / b["tokens_per_s"] for a, b in zip(steps, steps[1:])]
    steady = secs[1:] or secs  # intervals after the second step (mean: DAGG runs every 4th step)
    step_s = statistics.fmean(steady)
    positions = cfg["optim"]["batch_size"] * cfg["data"]["max_length"]
    return {"variant": args.variant, "steps": len(steps), "wall_s": wall, "step_s": step_s,
            "positions_per_s": positions / step_s,
            "target_tokens_per_s": (steps[-1]["tokens"] - steps[-1 - len(steady)]["tokens"]) / sum(steady),
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan"),
            "gpu": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
            "micro_batch": args.micro_batch, "grad_accum": cfg["optim"]["grad_accum"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True, help="a prepared data directory (mftpp prepare)")
    ap.add_argument("--tokenizer", required=True, help="a tokenizer directory (mftpp tokenizer)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--variants", default="mftcoder++,plain")
    ap.add_argument("--work", default="/tmp/mftpp-gpu-check")
    ap.add_argument("--out", default=None, help="also write the results here as gpu_check.json")
    ap.add_argument("--tiny", action="store_true", help="a CPU smoke run of this script")
    ap.add_argument("--worker", dest="variant", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    import torch

    if not torch.cuda.is_available() and not args.tiny:
        print("gpu_check: no CUDA device visible; this check needs one GPU", file=sys.stderr)
        return 2
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    build_model(Path(args.work) / "model", args.tiny)
    long_records(Path(args.prepared), Path(args.work) / "long", chars=1500 if args.tiny else 12000)
    print(f"random-weight model built and saved in {time.monotonic() - t0:.0f} s", flush=True)
    results = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--prepared", args.prepared, "--tokenizer", args.tokenizer,
               "--steps", str(args.steps), "--micro-batch", str(args.micro_batch), "--work", args.work,
               "--worker", variant] + (["--tiny"] if args.tiny else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
            results.append({"variant": variant, "error": f"exit {proc.returncode}"})
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))
        print(json.dumps(results[-1]), flush=True)
    ok = {r["variant"]: r for r in results if "error" not in r}
    print(f"\n{'variant':<12} {'step s':>8} {'positions/s':>12} {'target tok/s':>13} {'peak alloc GiB':>15} "
          f"{'peak reserved GiB':>18}")
    for r in ok.values():
        print(f"{r['variant']:<12} {r['step_s']:8.2f} {r['positions_per_s']:12.0f} {r['target_tokens_per_s']:13.0f} "
              f"{r['peak_allocated_gib']:15.1f} {r['peak_reserved_gib']:18.1f}")
    if "mftcoder++" in ok and "plain" in ok:
        a, b = ok["mftcoder++"], ok["plain"]
        print(f"mftcoder++ / plain: step time {a['step_s'] / b['step_s']:.2f}x, "
              f"peak memory {a['peak_allocated_gib'] / b['peak_allocated_gib']:.2f}x")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(results, indent=1))
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
