"""Generation throughput: `mftpp generate`'s batched decoding against one-prompt-at-a-time HF `generate`.

Both sides decode the same prompts (instruct-format prompts of a synthetic benchmark) with the same
randomly initialised tiny Qwen2 model (TinyModelSpec defaults: hidden 256, 6 layers) in the same
precision, greedily, for exactly --new-tokens tokens each (min = max new tokens, no EOS, no stop
sequences), so both generate the same number of tokens. Runs alternate (baseline, ours, baseline,
ours, ...) after a warm-up of each; the best run of each side is reported, and the greedy outputs of
the two sides are compared token for token.

    python3 benchmarks/bench_generate.py [--prompts 32] [--new-tokens 64] [--batch-size 16] [--threads N] [--plain]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from mftcoder_pp.benchmarks import get_benchmark  # noqa: E402
from mftcoder_pp.data.prompts import language_token  # noqa: E402
from mftcoder_pp.generation.batching import plan_batches  # noqa: E402
from mftcoder_pp.generation.engine import (Sampling, explicit_generation_config, generate_batch,  # noqa: E402
                                            generation_config, left_pad)
from mftcoder_pp.generation.prompts import build_prompt  # noqa: E402
from mftcoder_pp.model.load import TinyModelSpec, build_tiny  # noqa: E402

LANGS = ["python", "cpp", "java", "javascript", "go", "rust"]


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|pad|>"] + [language_token(lang) for lang in LANGS]
    vocab = {t: i for i, t in enumerate(special + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   additional_special_tokens=special[2:])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="synthetic-python")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each side (best is reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--plain", action="store_true",
                    help="also time plain HF generate on the padded batches (no row prefill, default cache)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers

    print("command: python3 " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), transformers {transformers.__version__}, python {platform.python_version()}")
    if hasattr(os, "getloadavg"):
        print("load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))

    tok = byte_tokenizer()
    spec = TinyModelSpec()
    model = build_tiny(spec, tok).to(getattr(torch, args.dtype)).eval()
    nparams = sum(p.numel() for p in model.parameters())
    tasks = get_benchmark(args.benchmark).tasks()[:args.prompts]
    prompts = [tok(build_prompt(t, "instruct", True))["input_ids"] for t in tasks]
    lengths = [len(p) for p in prompts]
    print(f"model: Qwen2 {spec.hidden_size} hidden, {spec.num_layers} layers, {nparams / 1e6:.1f}M parameters, "
          f"random weights, {args.dtype}; {len(prompts)} prompts of {args.benchmark} (instruct format, "
          f"{min(lengths)}-{max(lengths)} tokens), {args.new_tokens} new tokens each, greedy")

    sampling = Sampling(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    pad = tok.pad_token_id
    total = len(prompts) * args.new_tokens

    def ours() -> dict[int, list[int]]:
        out = {}
        for batch in plan_batches(["python"] * len(prompts), lengths, args.batch_size):
            for i, o in zip(batch, generate_batch(model, tok, [prompts[i] for i in batch], sampling, None, [], pad)):
                out[i] = list(o.token_ids)
        return out

    @torch.inference_mode()
    def one_at_a_time() -> dict[int, list[int]]:
        out = {}
        cfg = generation_config(sampling, [], pad)
        with explicit_generation_config(model):
            for i, p in enumerate(prompts):
                ids = torch.tensor([p])
                gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
                out[i] = gen[0, ids.shape[1]:].tolist()
        return out

    @torch.inference_mode()
    def plain_batched() -> dict[int, list[int]]:
        """For reference: HF generate on the same left-padded batches, default cache, batched prefill."""
        out = {}
        cfg = generation_config(sampling, [], pad)
        with explicit_generation_config(model):
            for batch in plan_batches(["python"] * len(prompts), lengths, args.batch_size):
                ids, mask = left_pad([prompts[i] for i in batch], pad, "cpu")
                gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)
                for i, row in zip(batch, gen[:, ids.shape[1]:].tolist()):
                    out[i] = row
        return out

    sides = [one_at_a_time, ours] + ([plain_batched] if args.plain else [])
    names = ("one-at-a-time HF generate", f"batched (batch {args.batch_size})",
             f"plain padded HF generate (batch {args.batch_size})")[:len(sides)]
    for fn in sides:  # warm-up
        fn()
    wall = {name: float("inf") for name in names}
    cpu = dict(wall)
    results = {}
    for _ in range(args.repeats):
        for name, fn in zip(names, sides):
            w, c = time.perf_counter(), time.process_time()
            results[name] = fn()
            wall[name] = min(wall[name], time.perf_counter() - w)
            cpu[name] = min(cpu[name], time.process_time() - c)
    base, mine = names[:2]
    same = sum(results[base][i] == results[mine][i] for i in range(len(prompts)))
    assert all(len(results[mine][i]) == args.new_tokens for i in range(len(prompts)))
    for name in names:
        print(f"{name:>36}: {total} tokens in {wall[name]:6.2f} s = {total / wall[name]:7.1f} tokens/s "
              f"(process CPU time {cpu[name]:6.2f} s)")
    for name in names[1:]:
        print(f"{'speed-up':>36}: {wall[base] / wall[name]:.2f}x wall-clock, {cpu[base] / cpu[name]:.2f}x CPU time "
              f"({name})")
    print(f"{'identical greedy outputs':>36}: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
