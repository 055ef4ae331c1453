"""`mftpp experiment CONFIG`: prepare → tokenizer → one pretrained base → every row × seed trained →
generations executed per benchmark → `results.json` → the report (report.py).

Every stage meets the next through files and is skipped when its output is complete, so re-running
the command continues an interrupted experiment (a half-trained row resumes from its checkpoint).
Layout under `out`: pretrain/, rows/<row>/seed-<s>/train/ and .../eval/<benchmark>/{greedy,sampled}/,
results.json, report.md, figures/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

from ..config import ConfigError, from_dict, load_config
from ..evaluate import evaluate
from ..generate import generate
from ..prepare import PrepareConfig, prepare
from ..tokenizer import TokenizerConfig, build_tokenizer
from ..train.config import TrainConfig
from ..train.loop import run as train_run
from .config import BenchmarkSpec, ExperimentConfig, slug


def log(msg: str, start: float) -> None:
    print(f"[experiment {time.monotonic() - start:7.1f}s] {msg}", file=sys.stderr, flush=True)


def set_dotted(data: dict, key: str, value, where: str) -> None:
    """data["a"]["b"] = value for key "a.b"; intermediate mappings are created."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {key}: {part} is not a mapping")
    node[parts[-1]] = value


def train_config(path: str, overrides: dict, where: str) -> TrainConfig:
    """A train config file with dotted overrides applied, validated by the training schema."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read train config ({exc})") from None
    for key, value in overrides.items():
        set_dotted(data, key, value, where)
    return from_dict(TrainConfig, data, where=where)


def run_experiment(config_path: str, out: str | None = None, progress: bool = True) -> dict:
    cfg = load_config(config_path, ExperimentConfig, {"out": out} if out else None)
    start = time.monotonic()
    say = (lambda m: log(m, start)) if progress else (lambda m: None)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)

    # Data and tokenizer (cached by their own outputs).
    prepared = load_config(cfg.prepare, PrepareConfig).out if cfg.prepare else None
    if cfg.prepare and not (Path(prepared) / "report.json").exists():
        say(f"prepare {cfg.prepare}")
        prepare(cfg.prepare)
    tok_dir = load_config(cfg.tokenizer, TokenizerConfig).out
    if not (Path(tok_dir) / "tokenizer_report.json").exists():
        say(f"tokenizer {cfg.tokenizer}")
        build_tokenizer(cfg.tokenizer)
    common = {"data.prepared": [prepared]} if prepared else {}

    # The base every row starts from.
    pre_out = root / "pretrain"
    pre_cfg = train_config(cfg.pretrain, {**common, "out": str(pre_out), "model.tokenizer": tok_dir},
                           f"{cfg.pretrain} (pretrain)")
    _train_cached(pre_cfg, say, "pretrain", progress)
    base = pre_out / "final"

    # Rows x seeds: train (cached), then generate + execute per benchmark (cached).
    results: dict = {"rows": {}, "seeds": cfg.seeds}
    runs = [(row, seed) for row in cfg.rows for seed in cfg.seeds]
    for i, (row, seed) in enumerate(runs, 1):
        run_dir = root / "rows" / slug(row.name) / f"seed-{seed}"
        if row.kind == "sft":
            over = {**common, **row.set, "out": str(run_dir / "train"), "seed": seed, "model.path": str(base)}
            tcfg = train_config(cfg.sft, over, f"{config_path}: rows[{cfg.rows.index(row)}]")
            _train_cached(tcfg, say, f"[{i}/{len(runs)}] {row.name} seed {seed}", progress)
            model_dir, prompt_format = run_dir / "train" / "final", "instruct"
        else:
            model_dir, prompt_format = base, "completion"
        for spec in cfg.evaluation.benchmarks:
            if spec.seeds == "first" and seed != cfg.seeds[0]:
                continue
            got = _evaluate_cached(cfg, spec, model_dir, prompt_format, run_dir / "eval" / spec.name, seed, say,
                                   f"[{i}/{len(runs)}] {row.name} seed {seed} {spec.name}", progress)
            results["rows"].setdefault(row.name, {}).setdefault(spec.name, {})[str(seed)] = got
    results["wall_seconds"] = round(time.monotonic() - start, 1)
    (root / "results.json").write_text(json.dumps(results, indent=1))
    from .report import write_report

    report = write_report(cfg, config_path, root, results)
    say(f"report: {report}")
    return {"out": str(root), "report": str(report), "wall_seconds": results["wall_seconds"]}


def _train_cached(tcfg: TrainConfig, say, label: str, progress: bool) -> None:
    out = Path(tcfg.out)
    if (out / "train_summary.json").exists():
        say(f"{label}: trained (cached)")
        return
    resume = (out / "checkpoints" / "latest").exists()
    say(f"{label}: {'resuming' if resume else 'training'} {tcfg.optim.max_steps} steps")
    train_run(tcfg, resume=resume, progress=progress, label=f"  {label}")


def _evaluate_cached(cfg: ExperimentConfig, spec: BenchmarkSpec, model_dir: Path, prompt_format: str, out: Path,
                     seed: int, say, label: str, progress: bool) -> dict:
    ev = cfg.evaluation
    max_new = spec.max_new_tokens or ev.max_new_tokens
    modes = [("greedy", 1, 0.0, spec.limit)]
    if spec.samples:
        modes.append(("sampled", spec.samples, spec.temperature, spec.sampled_limit or spec.limit))
    found = {}
    for mode, n, temperature, limit in modes:
        d = out / mode
        summary_file = d / "eval" / "summary.json"
        if not summary_file.exists():
            say(f"{label}: {mode} n={n}")
            generate(str(model_dir), spec.name, str(d), n=n, temperature=temperature, top_p=spec.top_p,
                     max_new_tokens=max_new, batch_size=ev.batch_size, limit=limit,
                     prompt_format=prompt_format, seed=seed, progress=progress, spread=True,
                     label=f"  {label} {mode}")
            ks = (1, 10) if n >= 10 else (1,)
            evaluate(spec.name, str(d / "eval"), samples=str(d / "samples.jsonl"), k=ks, workers=ev.workers,
                     timeout=ev.timeout, progress=progress, label=f"  {label} {mode}")
        found[mode] = metrics_of(json.loads(summary_file.read_text()))
    return found


def metrics_of(summary: dict) -> dict:
    """The report's numbers from one evaluation summary (fractions, not percentages)."""
    def cb(block: dict | None):
        value = block.get("codebleu") if block else None
        return value.get("codebleu") if isinstance(value, dict) else None

    per_language = summary.get("per_language") or {}
    codebleus = [cb(b) for b in per_language.values()] if per_language else [cb(summary)]
    codebleus = [c for c in codebleus if c is not None]
    return {"pass@1": summary["pass@k"].get("pass@1"), "pass@10": summary["pass@k"].get("pass@10"),
            "codebleu": sum(codebleus) / len(codebleus) if codebleus else None,
            "exact_match": summary.get("exact_match"), "rsr": summary.get("rsr"), "fpr": summary.get("fpr"),
            "test_pass_rate": summary.get("test_pass_rate"), "num_tasks": summary.get("num_tasks"),
            "per_language": {lang: b["pass@k"].get("pass@1") for lang, b in per_language.items()}}
