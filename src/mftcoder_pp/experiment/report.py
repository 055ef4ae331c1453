"""The experiment's report: Table-1-style Markdown with mean ± 95% confidence interval over seeds, the
figures, and how it was made (commit, configs, seeds, command, wall time). Every number comes from
`results.json`, which holds what each evaluation wrote."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from .. import __version__
from .config import slug

# Student t quantiles t_{0.975, df} for df = 1..30 (beyond: the normal 1.96).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
COLUMNS = [("pass@1", "greedy", "pass@1"), ("pass@10", "sampled", "pass@10"), ("CodeBLEU", "greedy", "codebleu"),
           ("EM", "greedy", "exact_match"), ("RSR", "greedy", "rsr"), ("FPR", "greedy", "fpr")]


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% confidence interval (Student t; None for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[n - 2] if n - 2 < len(T975) else 1.96
    return mean, t * sd / math.sqrt(n)


def cell(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean, half = mean_ci(values)
    return f"{100 * mean:.1f}" if half is None else f"{100 * mean:.1f} ± {100 * half:.1f}"


def _values(results: dict, row: str, bench: str, mode: str, key: str) -> list:
    per_seed = results["rows"].get(row, {}).get(bench, {})
    return [s.get(mode, {}).get(key) for s in per_seed.values()]


def benchmark_table(results: dict, rows: list[str], bench: str) -> str:
    head = "| row | " + " | ".join(c for c, _, _ in COLUMNS) + " | seeds |\n|---|" + "---|" * (len(COLUMNS) + 1) + "\n"
    lines = []
    for row in rows:
        per_seed = results["rows"].get(row, {}).get(bench, {})
        if not per_seed:
            continue
        cells = [cell(_values(results, row, bench, mode, key)) for _, mode, key in COLUMNS]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {len(per_seed)} |")
    return head + "\n".join(lines) + "\n"


def language_table(results: dict, rows: list[str], bench: str) -> str | None:
    langs = sorted({lang for row in rows for s in results["rows"].get(row, {}).get(bench, {}).values()
                    for lang in s.get("greedy", {}).get("per_language", {})})
    if not langs:
        return None
    head = "| row | " + " | ".join(langs) + " |\n|---|" + "---|" * len(langs) + "\n"
    lines = []
    for row in rows:
        per_seed = results["rows"].get(row, {}).get(bench, {}).values()
        if per_seed:
            lines.append(f"| {row} | " + " | ".join(
                cell([s["greedy"]["per_language"].get(lang) for s in per_seed]) for lang in langs) + " |")
    return head + "\n".join(lines) + "\n"


def write_report(cfg, config_path: str, root: Path, results: dict) -> Path:
    rows = [r.name for r in cfg.rows]
    figures = _figures(cfg, root, results, rows)
    commit = _git(["rev-parse", "HEAD"])
    dirty = bool(_git(["status", "--porcelain"]))
    parts = [f"# {cfg.title}\n",
             "Every number is the mean over seeds ± the half-width of its 95% confidence interval (Student t), "
             "in percent, computed from the evaluation files under `rows/`. pass@1 is greedy decoding; pass@10 "
             "uses sampled completions (T and n below). CodeBLEU is averaged over the benchmark's languages.\n"]
    for spec in cfg.evaluation.benchmarks:
        parts.append(f"## {spec.name}\n")
        detail = f"{str(spec.limit) + ' tasks evenly spaced over the benchmark' if spec.limit else 'all tasks'}; greedy"
        if spec.samples:
            n_sampled = spec.sampled_limit or spec.limit
            detail += (f"; pass@10 from {spec.samples} samples per task at T = {spec.temperature}, top_p = "
                       f"{spec.top_p}, on {str(n_sampled) + ' evenly spaced' if n_sampled else 'all'} tasks")
        parts.append(f"{detail}; seeds: {spec.seeds}.\n")
        parts.append(benchmark_table(results, rows, spec.name))
        langs = language_table(results, rows, spec.name)
        if langs:
            parts.append(f"\npass@1 (greedy) per language:\n\n{langs}")
    if figures:
        parts.append("## Figures\n")
        parts += [f"![{name}](figures/{Path(path).name})\n" for name, path in figures.items()]
    parts.append("## How this was made\n")
    parts.append(f"- command: `mftpp experiment {config_path}`\n- wall time: {results['wall_seconds']:.0f} s "
                 f"(cached stages count as their load time only)\n- seeds: {results['seeds']}\n"
                 f"- mftcoder_pp {__version__}, commit `{commit or 'unknown'}`{' (with uncommitted changes)' if dirty else ''}\n"
                 f"- python {sys.version.split()[0]}\n- configs: the experiment config and every resolved "
                 f"training config (`rows/*/seed-*/train/train_config.json`) are in this directory\n")
    shutil.copy(config_path, root / "experiment_config.yaml")
    path = root / "report.md"
    path.write_text("\n".join(parts))
    return path


def _figures(cfg, root: Path, results: dict, rows: list[str]) -> dict[str, str]:
    out = root / "figures"
    out.mkdir(exist_ok=True)
    figures: dict[str, str] = {}
    # Training diagnostics of the first SFT row with modules on (Figure 2, π, gates, discriminator).
    try:
        from ..train.figures import training_figures
    except ImportError:  # pragma: no cover
        training_figures = None
    for row in _diagnostic_rows(cfg, root):
        written = training_figures(str(row[1]), str(out)) if training_figures else {}
        figures.update({f"{row[0]}: {k}": v for k, v in written.items()})
        break
    fig3 = Path(json.loads((root / "pretrain" / "train_config.json").read_text())["config"]["data"]["prepared"][0]) / "fig3.png"
    if fig3.exists():
        shutil.copy(fig3, out / "fig3_preprocessing.png")
        figures["Figure 3: preprocessing"] = str(out / "fig3_preprocessing.png")
    bar = _bar_chart(cfg, results, rows, out)
    if bar:
        figures["pass@1 per row"] = bar
    return figures


def _bar_chart(cfg, results: dict, rows: list[str], out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bench = cfg.evaluation.benchmarks[0].name
    data = [(row, [v for v in _values(results, row, bench, "greedy", "pass@1") if v is not None]) for row in rows]
    data = [(r, v) for r, v in data if v]
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(data) + 1.2), dpi=90)
    means = [100 * mean_ci(v)[0] for _, v in data]
    errs = [100 * (mean_ci(v)[1] or 0) for _, v in data]
    ax.barh([r for r, _ in data][::-1], means[::-1], xerr=errs[::-1], color="#4c72b0", capsize=3)
    ax.set_xlabel(f"{bench} pass@1 (%), mean ± 95% CI")
    fig.tight_layout()
    path = out / "pass1_rows.png"
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _diagnostic_rows(cfg, root: Path):
    """(name, metrics path) of SFT rows, those with the most MFTCoder++ modules on first (their
    training diagnostics are the interesting ones)."""
    found = []
    for row in cfg.rows:
        run = root / "rows" / slug(row.name) / f"seed-{cfg.seeds[0]}" / "train"
        if row.kind != "sft" or not (run / "metrics.jsonl").exists():
            continue
        modules = json.loads((run / "train_config.json").read_text())["config"]["modules"]
        found.append((-sum(m["enabled"] for m in modules.values()), row.name, run / "metrics.jsonl"))
    return [(name, path) for _, name, path in sorted(found, key=lambda x: x[0])]


def _git(args: list[str]) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
