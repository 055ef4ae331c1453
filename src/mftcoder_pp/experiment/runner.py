"""`mftpp experiment CONFIG`: prepare → tokenizer → one pretrained base → every row × seed trained →
generations executed per benchmark → `results.json` → the report (report.py).

Hyper-parameters come from pilots on dev benchmarks (`pilots:`), run after the base and before the
rows, each recorded in pilots/<name>/pilot.json; a pilot either sets keys on every row or adds a
variant row. Every stage meets the next through files and is skipped when its output is complete, so
re-running the command continues an interrupted experiment (a half-trained row resumes from its
checkpoint). Layout under `out`: pretrain/, pilots/<name>/point-<j>/, rows/<row>/seed-<s>/train/ and
.../eval/<benchmark>/{greedy,sampled}/ (a base row: its first seed only), verdict-cache/,
results.json, report.md, figures/.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..config import ConfigError, flatten, from_dict, load_config, read_yaml
from ..devscore import dev_pass_at_1
from ..evaluate import evaluate
from ..generate import generate
from ..prepare import PrepareConfig, prepare
from ..tokenizer import TokenizerConfig, build_tokenizer
from ..train.config import TrainConfig
from ..train.loop import run as train_run
from ..report.experiment import slug
from .config import BenchmarkSpec, ExperimentConfig


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
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level: expected a mapping, got {type(data).__name__}")
    for key, value in overrides.items():
        set_dotted(data, key, value, where)
    return from_dict(TrainConfig, data, where=where)


def check_stages(cfg: ExperimentConfig, config_path: str) -> None:
    """Load every config the experiment names, with each row's and pilot point's keys applied, before
    anything runs: a typo in the last row must not surface after the base has been trained. Errors
    name the experiment's key, then the file and key that are wrong."""
    def named(key: str, load, *args) -> None:
        try:
            load(*args)
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {key}: {exc}") from None

    for i, prep in enumerate(cfg.prepare):
        named(f"prepare[{i}]", load_config, prep, PrepareConfig)
    named("tokenizer", load_config, cfg.tokenizer, TokenizerConfig)
    if cfg.pretrain is not None:
        named("pretrain", train_config, cfg.pretrain, {"out": "pretrain", "model.tokenizer": "tokenizer"}, cfg.pretrain)
    else:
        from ..generate import GenerationError, _check_model

        try:
            _check_model(cfg.base_model)
        except GenerationError as exc:
            raise ConfigError(f"{config_path}: base_model: {exc}") from None
    row_sets = {r.name: r.set for r in cfg.rows}
    for i, row in enumerate(cfg.rows):
        if row.kind == "sft":
            named(f"rows[{i}].set", train_config, cfg.sft, {**row.set, "model.path": "base"}, cfg.sft)
    for j, p in enumerate(cfg.pilots):
        for point in _grid(p.grid):
            named(f"pilots[{j}].grid {point}", train_config, cfg.sft,
                  {**row_sets[p.row], **point, "model.path": "base"}, cfg.sft)


def run_experiment(config_path: str, out: str | None = None, progress: bool = True) -> dict:
    cfg = load_config(config_path, ExperimentConfig, {"out": out} if out else None)
    check_stages(cfg, config_path)
    start = time.monotonic()
    say = (lambda m: log(m, start)) if progress else (lambda m: None)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)

    # Data and tokenizer (cached by their own outputs).
    for prep in cfg.prepare:
        if not (Path(load_config(prep, PrepareConfig).out) / "report.json").exists():
            say(f"prepare {prep}")
            prepare(prep)
    tok_dir = load_config(cfg.tokenizer, TokenizerConfig).out
    if not (Path(tok_dir) / "tokenizer_report.json").exists():
        say(f"tokenizer {cfg.tokenizer}")
        build_tokenizer(cfg.tokenizer)

    # The base every row starts from: pretrained here, or given.
    if cfg.pretrain is not None:
        pre_out = root / "pretrain"
        pre_cfg = train_config(cfg.pretrain, {"out": str(pre_out), "model.tokenizer": tok_dir},
                               f"{cfg.pretrain} (pretrain)")
        _train_cached(pre_cfg, say, "pretrain", progress)
        base = pre_out / "final"
    else:
        base = cfg.base_model
    cache = root / "verdict-cache"  # rows and seeds writing the same program share its verdict

    # Hyper-parameters from dev splits (pilots), in order: each pilot trains with what earlier ones chose.
    rows = {r.name: dict(r.set) for r in cfg.rows if r.kind == "sft"}
    chosen: dict = {}  # keys every SFT row gets (unless it sets them itself)
    pilots = []
    for p in cfg.pilots:
        record = _pilot(cfg, config_path, p, {**chosen, **rows[p.row]}, base, root, cache, say, progress)
        pilots.append(record)
        if p.apply == "rows":
            chosen.update(record["applied"])
        else:
            rows[p.variant_name] = {**rows[p.row], **record["winner"]}
    formats = {r.name: r.prompt_format for r in cfg.rows}
    row_list = [(r.name, r.kind) for r in cfg.rows] + [(n, "sft") for n in rows if n not in {r.name for r in cfg.rows}]

    # Rows x seeds: train (cached), then generate + execute per benchmark (cached). A base row is one
    # model: evaluated once (greedy decoding does not depend on the seed); comparisons repeat it per seed.
    results: dict = {"rows": {}, "seeds": cfg.seeds, "pilots": pilots, "chosen": chosen,
                     "row_settings": {n: {**chosen, **s} for n, s in rows.items()}, "base_seed": cfg.seeds[0]}
    runs = [(name, kind, seed) for name, kind in row_list for seed in (cfg.seeds if kind == "sft" else cfg.seeds[:1])]
    for i, (name, kind, seed) in enumerate(runs, 1):
        run_dir = root / "rows" / slug(name) / f"seed-{seed}"
        label = f"[{i}/{len(runs)}] {name} seed {seed}"
        if kind == "sft":
            where = f"{config_path}: row {name!r}"
            tcfg = train_config(cfg.sft, {**chosen, **rows[name], "out": str(run_dir / "train"), "seed": seed,
                                          "model.path": str(base)}, where)
            _train_cached(tcfg, say, label, progress)
            model_dir = run_dir / "train" / "final"
        else:
            model_dir = base
        for spec in cfg.evaluation.benchmarks:
            if spec.seeds == "first" and seed != cfg.seeds[0]:
                continue
            got = _evaluate_cached(cfg, spec, model_dir, formats.get(name) or cfg.evaluation.prompt_format,
                                   run_dir / "eval" / spec.name,
                                   seed, say, f"{label} {spec.name}", progress, cache)
            results["rows"].setdefault(name, {}).setdefault(spec.name, {})[str(seed)] = got
    results["row_order"] = [n for n, _ in row_list]
    results["wall_seconds"] = round(time.monotonic() - start, 1)
    (root / "results.json").write_text(json.dumps(results, indent=1))
    from ..report.experiment import write_report

    report = write_report(cfg, config_path, root, results)
    say(f"report: {report}")
    return {"out": str(root), "report": str(report), "wall_seconds": results["wall_seconds"]}


def _grid(grid: dict[str, list]) -> list[dict]:
    points = [{}]
    for key, values in grid.items():
        points = [{**p, key: v} for p in points for v in values]
    return points


def _pilot(cfg: ExperimentConfig, config_path: str, p, settings: dict, base: Path, root: Path, cache: Path,
           say, progress: bool) -> dict:
    """Train every grid point from `settings`, score it on the dev benchmark, return the record with
    the winner (also written to pilots/<name>/pilot.json)."""
    spec = BenchmarkSpec(name=p.benchmark, limit=p.limit)
    seed = cfg.seeds[0]
    scored = []
    points = _grid(p.grid)
    for j, point in enumerate(points, 1):
        run_dir = root / "pilots" / slug(p.name) / f"point-{j}"
        label = f"pilot {p.name} [{j}/{len(points)}] {point}"
        tcfg = train_config(cfg.sft, {**settings, **point, "out": str(run_dir / "train"), "seed": seed,
                                      "model.path": str(base)}, f"{config_path}: pilot {p.name!r} point {point}")
        _train_cached(tcfg, say, label, progress)
        got = _evaluate_cached(cfg, spec, run_dir / "train" / "final", cfg.evaluation.prompt_format,
                               run_dir / "eval" / spec.name, seed, say, label, progress, cache)
        scored.append({"point": point, "dev_pass@1": got["greedy"]["pass@1"],
                       "num_tasks": got["greedy"]["num_tasks"]})
    best = max(range(len(scored)), key=lambda k: (scored[k]["dev_pass@1"], -k))
    winner = scored[best]["point"]
    applied = dict(winner)
    if p.apply == "rows" and p.lr_range_factors:
        lr = winner["optim.lr"]
        applied["optim.lr_range"] = [p.lr_range_factors[0] * lr, p.lr_range_factors[1] * lr]
    record = {"name": p.name, "row": p.row, "benchmark": p.benchmark, "seed": seed, "apply": p.apply,
              "variant_name": p.variant_name, "grid": p.grid, "scored": scored, "winner": winner, "applied": applied}
    (root / "pilots" / slug(p.name) / "pilot.json").write_text(json.dumps(record, indent=1))
    say(f"pilot {p.name}: chose {winner} (dev pass@1 {scored[best]['dev_pass@1']:.3f})")
    return record


def _train_cached(tcfg: TrainConfig, say, label: str, progress: bool) -> None:
    out = Path(tcfg.out)
    if (out / "train_summary.json").exists():
        _check_trained(out, tcfg)
        say(f"{label}: trained (cached)")
        return
    resume = (out / "checkpoints" / "latest").exists()
    say(f"{label}: {'resuming' if resume else 'training'} {tcfg.optim.max_steps} steps")
    train_run(tcfg, resume=resume, progress=progress, label=f"  {label}", measure=dev_pass_at_1(tcfg.early_stopping))


def _evaluate_cached(cfg: ExperimentConfig, spec: BenchmarkSpec, model_dir: Path, prompt_format: str, out: Path,
                     seed: int, say, label: str, progress: bool, cache: Path | None = None) -> dict:
    ev = cfg.evaluation
    max_new = spec.max_new_tokens or ev.max_new_tokens
    modes = [("greedy", 1, 0.0, spec.limit)]
    if spec.samples:
        modes.append(("sampled", spec.samples, spec.temperature, spec.sampled_limit or spec.limit))
    found = {}
    for mode, n, temperature, limit in modes:
        d = out / mode
        summary_file = d / "eval" / "summary.json"
        if summary_file.exists():
            _check_cached(d, {"prompt_format": prompt_format, "max_new_tokens": max_new, "limit": limit, "n": n})
        else:
            say(f"{label}: {mode} n={n}")
            generate(str(model_dir), spec.name, str(d), n=n, temperature=temperature, top_p=spec.top_p,
                     max_new_tokens=max_new, batch_size=ev.batch_size, limit=limit,
                     prompt_format=prompt_format, seed=seed, progress=progress, spread=True,
                     label=f"  {label} {mode}")
            ks = (1, 10) if n >= 10 else (1,)
            evaluate(spec.name, str(d / "eval"), samples=str(d / "samples.jsonl"), k=ks, workers=ev.workers,
                     timeout=ev.timeout, progress=progress, label=f"  {label} {mode}", verdict_cache=cache)
        found[mode] = metrics_of(json.loads(summary_file.read_text()))
    return found


def _check_trained(out: Path, tcfg: TrainConfig) -> None:
    """A finished run is reused only if it was trained with the config asked for now (keys that one
    of the two does not have, e.g. added to the schema since, are not compared)."""
    try:
        before = json.loads((out / "train_config.json").read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no record to compare with
    now = json.loads(json.dumps(asdict(tcfg)))
    _refuse_stale(out, "a finished run trained with another config", dict(flatten(before)), dict(flatten(now)))


def _check_cached(d: Path, want: dict) -> None:
    """A cached evaluation is reused only if it was generated with the settings asked for now."""
    try:
        meta = json.loads((d / "samples.jsonl.meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an evaluation of samples made elsewhere: nothing to compare
    _refuse_stale(d, "cached samples were generated with other settings", meta, want)


def _refuse_stale(where: Path, what: str, before: dict, now: dict) -> None:
    """Stop when a cached stage was made with other settings than asked for now (keys in both)."""
    diff = [f"{k} {before[k]!r} -> {now[k]!r}" for k in sorted(set(before) & set(now)) if before[k] != now[k]]
    if diff:
        raise ValueError(f"{where}: {what} ({'; '.join(diff[:5])}{'; ...' if len(diff) > 5 else ''}); "
                         "delete that directory or give the experiment another `out`")


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
