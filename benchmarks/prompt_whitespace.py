"""What holding back a completion prompt's trailing whitespace does to pass@1, side by side.

    python benchmarks/prompt_whitespace.py --model DIR [--benchmarks synthetic-transfer,synthetic-python]
                                           [--limit 48] [--work DIR]

Greedy `--prompt-format completion` generation for a base model, twice per benchmark: as `mftpp generate`
does it (the prompt's trailing newline held back and taken off the completion again, docs/generate.md)
and with the raw prompt (the newline given to the model as its own token). Both are executed by the
harness; the script prints pass@1 for each and the difference. Tasks: `--limit` spread evenly over the
benchmark, as experiments pick them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mftcoder_pp.generate as gen
from mftcoder_pp.evaluate import evaluate


def run(model: str, benchmark: str, limit: int, work: Path, hold_back: bool) -> float:
    out = work / f"{benchmark}-{'held' if hold_back else 'raw'}"
    original = gen.split_trailing_space
    if not hold_back:
        gen.split_trailing_space = lambda prompt: (prompt, "")
    try:
        gen.generate(model, benchmark, str(out / "gen"), limit=limit, spread=True, prompt_format="completion",
                     max_new_tokens=120, batch_size=32, progress=False)
    finally:
        gen.split_trailing_space = original
    summary = evaluate(benchmark, str(out / "eval"), samples=str(out / "gen" / "samples.jsonl"), progress=False)
    return summary["pass@k"]["pass@1"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--benchmarks", default="synthetic-transfer,synthetic-python")
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="mftpp-ws-"))
    print(f"{'benchmark':<20} {'held back':>10} {'raw prompt':>11} {'difference':>11}")
    for bench in args.benchmarks.split(","):
        held = run(args.model, bench, args.limit, work, hold_back=True)
        raw = run(args.model, bench, args.limit, work, hold_back=False)
        print(f"{bench:<20} {100 * held:9.1f}% {100 * raw:10.1f}% {100 * (held - raw):+10.1f}")


if __name__ == "__main__":
    main()
