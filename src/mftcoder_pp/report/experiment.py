"""The experiment's report: every row compared *paired* with the base and with plain LoRA SFT.

For each benchmark, a row's pass@1 is the mean over its (task, seed) cells of the greedy verdicts
read from `rows/<row>/seed-<s>/eval/<benchmark>/greedy/eval/results.jsonl`, with a 95% CI that
resamples tasks (seeds kept together); its difference against the base and against plain LoRA is
taken cell by cell, with the same bootstrap, and the minimum detectable difference (80% power,
α = 0.05) of the comparison against plain LoRA is printed beside it (metrics/paired.py). A base row
is one greedy evaluation, repeated for every seed of the row it is compared with. Per-language
blocks split the same cells by the task's language. CodeBLEU and RSR are means over seeds.
Pilots (hyper-parameters chosen on dev benchmarks) are listed with every grid point's dev score.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from .. import __version__
from ..data.records import json_objects
from ..metrics.paired import Interval, PairedDifference, broadcast_seeds, paired_difference, row_interval
from ..provenance import git_commit, git_dirty

def slug(name: str) -> str:
    """A row's directory name: "MFTCoder++ w/o ATDS" -> "mftcoder-pp-w-o-atds" ("++" spelt out, so
    that "MFTCoder" and "MFTCoder++" rows never share a directory)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("++", " pp ")).strip("-")


Cells = dict[str, dict[int, float]]


def read_cells(root: Path, row: str, bench: str, seeds: list[int]) -> tuple[Cells, dict[str, str]]:
    """({task: {seed: passed}}, {task: language}) from a row's greedy results files."""
    cells: Cells = {}
    language: dict[str, str] = {}
    for seed in seeds:
        path = root / "rows" / slug(row) / f"seed-{seed}" / "eval" / bench / "greedy" / "eval" / "results.jsonl"
        if not path.exists():
            continue
        for _, r in json_objects(path, ValueError, "results file"):
            cells.setdefault(r["task_id"], {})[seed] = float(r["passed"])
            language[r["task_id"]] = r.get("language", "")
    return cells, language


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _interval(iv: Interval | PairedDifference, signed: bool = False) -> str:
    fmt = (lambda v: f"{100 * v:+.1f}") if signed else _pct
    return f"{fmt(iv.mean)} [{fmt(iv.low)}, {fmt(iv.high)}]"


def _mark(d: PairedDifference) -> str:
    return " ▲" if d.low > 0 else (" ▼" if d.high < 0 else "")


class Comparison:
    """Cells of every row of one benchmark (optionally one language), and paired differences."""

    def __init__(self, root: Path, rows: list[tuple[str, str]], bench: str, seeds: list[int], base_seed: int,
                 language: str | None = None):
        self.rows, self.seeds = rows, seeds
        self.cells: dict[str, Cells] = {}
        self.languages: set[str] = set()
        for name, kind in rows:
            cells, lang = read_cells(root, name, bench, [base_seed] if kind == "base" else seeds)
            if language is not None:
                cells = {t: v for t, v in cells.items() if lang.get(t) == language}
            self.languages |= set(lang.values())
            if cells:
                self.cells[name] = broadcast_seeds(cells, seeds) if kind == "base" else cells

    def interval(self, row: str) -> Interval:
        return row_interval(self.cells[row])

    def diff(self, row: str, ref: str | None) -> PairedDifference | None:
        if ref is None or row == ref or row not in self.cells or ref not in self.cells:
            return None
        return paired_difference(self.cells[row], self.cells[ref])


def benchmark_table(cmp: Comparison, refs: dict[str, str], means: dict[str, dict]) -> tuple[str, dict]:
    """Markdown table and the numbers behind it ({row: {...}})."""
    base, plain = refs.get("base"), refs.get("plain")
    head = ["row", "pass@1 [95% CI]"]
    if base:
        head.append("Δ vs base [95% CI]")
    if plain:
        head += ["Δ vs plain LoRA [95% CI]", "MDD vs plain"]
    head += ["CodeBLEU", "RSR", "tasks × seeds"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    numbers = {}
    for name, _ in cmp.rows:
        if name not in cmp.cells:
            continue
        iv = cmp.interval(name)
        cells = [name, _interval(iv)]
        entry = {"pass@1": iv.as_dict()}
        for key, ref in (("base", base), ("plain", plain)):
            if ref is None:
                continue
            d = cmp.diff(name, ref)
            cells.append("–" if d is None else _interval(d, signed=True) + _mark(d))
            if key == "plain":
                cells.append("–" if d is None else _mdd(d))
            if d is not None:
                entry[f"vs_{key}"] = d.as_dict()
        m = means.get(name, {})
        cells += [_pct(m["codebleu"]) if m.get("codebleu") is not None else "–",
                  _pct(m["rsr"]) if m.get("rsr") is not None else "–", f"{iv.tasks} × {iv.seeds}"]
        lines.append("| " + " | ".join(cells) + " |")
        numbers[name] = entry
    return "\n".join(lines) + "\n", numbers


def _mdd(d) -> str:
    """The MDD, or what bounds it when the two rows agree on every cell: then the cells carry no
    estimate of the paired variance (the observed MDD would read 0.0), and by the rule of three a
    true difference up to 3 / tasks (95%) is consistent with seeing none."""
    if d.wins + d.losses == 0:
        return f"n/a (no discordant cell; ≤ {300 / d.tasks:.1f} undetected)"
    return f"{100 * d.mdd:.1f}"


def language_table(root: Path, rows, bench: str, seeds, base_seed, langs: list[str], refs: dict[str, str]) -> str:
    """pass@1 per language, and (in a second line per row) Δ vs plain LoRA with its CI."""
    per = {lang: Comparison(root, rows, bench, seeds, base_seed, lang) for lang in langs}
    head = "| row | " + " | ".join(langs) + " |\n|---|" + "---|" * len(langs) + "\n"
    lines = []
    plain = refs.get("plain")
    for name, _ in rows:
        if not all(name in per[lang].cells for lang in langs):
            continue
        cells = []
        for lang in langs:
            text = _pct(per[lang].interval(name).mean)
            d = per[lang].diff(name, plain)
            if d is not None:
                text += f" ({100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]){_mark(d)}"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    tasks = {lang: len(next(iter(per[lang].cells.values()), {})) for lang in langs}
    note = ("pass@1 per language; in brackets the paired difference against plain LoRA SFT with its 95% CI. "
            "Tasks per language: " + ", ".join(f"{lang} {n}" for lang, n in tasks.items()) + ".\n\n")
    return note + head + "\n".join(lines) + "\n"


def _means(results: dict, bench: str) -> dict[str, dict]:
    out = {}
    for row, per_bench in results["rows"].items():
        per_seed = per_bench.get(bench, {})
        vals = {}
        for key in ("codebleu", "rsr"):
            xs = [s["greedy"].get(key) for s in per_seed.values() if s.get("greedy", {}).get(key) is not None]
            vals[key] = sum(xs) / len(xs) if xs else None
        out[row] = vals
    return out


def pilot_section(pilots: list[dict]) -> str:
    parts = []
    for p in pilots:
        keys = list(p["grid"])
        parts.append(f"### Pilot `{p['name']}`: {p['row']} on {p['benchmark']} (seed {p['seed']})\n")
        head = "| " + " | ".join(keys) + " | dev pass@1 | tasks |\n|" + "---|" * (len(keys) + 2) + "\n"
        lines = []
        for s in p["scored"]:
            mark = " **(chosen)**" if s["point"] == p["winner"] else ""
            lines.append("| " + " | ".join(str(s["point"][k]) for k in keys) +
                         f" | {_pct(s['dev_pass@1'])}{mark} | {s['num_tasks']} |")
        applied = (f"applied to every SFT row: `{json.dumps(p['applied'])}`" if p["apply"] == "rows"
                   else f"added as the row **{p['variant_name']}**: `{json.dumps(p['winner'])}`")
        parts.append(head + "\n".join(lines) + f"\n\nChosen: {applied}.\n")
    return "\n".join(parts)


def write_report(cfg, config_path: str, root: Path, results: dict) -> Path:
    kinds = {r.name: r.kind for r in cfg.rows}
    rows = [(name, kinds.get(name, "sft")) for name in results["row_order"]]
    refs = cfg.reference_rows()
    seeds, base_seed = results["seeds"], results["base_seed"]
    commit, dirty = git_commit() or "", bool(git_dirty())
    fmt = cfg.evaluation.prompt_format
    own = [f"**{r.name}** in `{r.prompt_format}`" for r in cfg.rows if r.prompt_format not in (None, fmt)]
    formats = (f"in the same prompt format (`{fmt}`)" if not own else
               f"in the prompt format `{fmt}`, except {', '.join(own)}")
    parts = [f"# {cfg.title}\n",
             f"Percent. pass@1 is greedy; every row is evaluated on the same tasks {formats}. Each row's interval is a 95% bootstrap CI that resamples "
             "tasks (seeds kept together); Δ columns are paired differences over the same (task, seed) cells "
             "with the same bootstrap (▲/▼: the CI excludes 0); MDD is the minimum detectable difference of "
             "the comparison with plain LoRA (80% power, α = 0.05). The base row is one model, evaluated "
             "once (greedy decoding does not depend on the seed) and repeated per seed in comparisons.\n"]
    numbers = {}
    for spec in cfg.evaluation.benchmarks:
        cmp = Comparison(root, rows, spec.name, seeds if spec.seeds == "all" else seeds[:1], base_seed)
        if not cmp.cells:
            continue
        parts.append(f"## {spec.name}\n")
        parts.append(f"{str(spec.limit) + ' tasks evenly spaced over the benchmark' if spec.limit else 'all tasks'};"
                     f" seeds: {spec.seeds}.\n")
        table, numbers[spec.name] = benchmark_table(cmp, refs, _means(results, spec.name))
        parts.append(table)
        langs = sorted(cmp.languages)
        if len(langs) > 1:
            parts.append("\n" + language_table(root, rows, spec.name, cmp.seeds, base_seed, langs, refs))
    if results.get("pilots"):
        parts.append("## Hyper-parameters chosen on dev splits\n")
        parts.append(pilot_section(results["pilots"]))
    figures = _figures(cfg, root, rows, seeds, base_seed)
    if figures:
        parts.append("## Figures\n")
        parts += [f"![{name}](figures/{Path(path).name})\n" for name, path in figures.items()]
    parts.append("## How this was made\n")
    parts.append(f"- command: `mftpp experiment {config_path}`\n- wall time: {results['wall_seconds']:.0f} s "
                 f"(cached stages count as their load time only)\n- seeds: {seeds}\n"
                 f"- mftcoder_pp {__version__}, commit `{commit or 'unknown'}`{' (with uncommitted changes)' if dirty else ''}\n"
                 f"- python {sys.version.split()[0]}\n- configs: the experiment config and every resolved "
                 f"training config (`rows/*/seed-*/train/train_config.json`) are in this directory; "
                 f"per-row settings after the pilots: `results.json` → `row_settings`\n")
    shutil.copy(config_path, root / "experiment_config.yaml")
    (root / "comparisons.json").write_text(json.dumps(numbers, indent=1))
    path = root / "report.md"
    path.write_text("\n".join(parts))
    return path


def _figures(cfg, root: Path, rows, seeds, base_seed) -> dict[str, str]:
    out = root / "figures"
    out.mkdir(exist_ok=True)
    figures: dict[str, str] = {}
    from .training import training_figures

    for name, path in _diagnostic_rows(root, rows, seeds[0])[:1]:
        written = training_figures(str(path), str(out))
        figures.update({f"{name}: {k}": v for k, v in written.items()})
    pretrain_cfg = root / "pretrain" / "train_config.json"
    if pretrain_cfg.exists():
        fig3 = Path(json.loads(pretrain_cfg.read_text())["config"]["data"]["prepared"][0]) / "fig3.png"
        if fig3.exists():
            shutil.copy(fig3, out / "fig3_preprocessing.png")
            figures["Figure 3: preprocessing"] = str(out / "fig3_preprocessing.png")
    bar = _bar_chart(cfg, root, rows, seeds, base_seed, out)
    if bar:
        figures["pass@1 per row"] = bar
    return figures


def _bar_chart(cfg, root: Path, rows, seeds, base_seed, out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bench = cfg.evaluation.benchmarks[0].name
    cmp = Comparison(root, rows, bench, seeds, base_seed)
    data = [(name, cmp.interval(name)) for name, _ in rows if name in cmp.cells]
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(data) + 1.2), dpi=90)
    names = [n for n, _ in data][::-1]
    means = [100 * iv.mean for _, iv in data][::-1]
    errs = [[100 * (iv.mean - iv.low) for _, iv in data][::-1], [100 * (iv.high - iv.mean) for _, iv in data][::-1]]
    ax.barh(names, means, xerr=errs, color="#4c72b0", capsize=3)
    ax.set_xlabel(f"{bench} pass@1 (%), 95% task-bootstrap CI")
    fig.tight_layout()
    path = out / "pass1_rows.png"
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _diagnostic_rows(root: Path, rows, seed: int):
    """(name, metrics path) of SFT rows, those with the most MFTCoder++ modules on first."""
    found = []
    for name, kind in rows:
        run = root / "rows" / slug(name) / f"seed-{seed}" / "train"
        if kind != "sft" or not (run / "metrics.jsonl").exists():
            continue
        modules = json.loads((run / "train_config.json").read_text())["config"]["modules"]
        found.append((-sum(m["enabled"] for m in modules.values()), name, run / "metrics.jsonl"))
    return [(name, path) for _, name, path in sorted(found, key=lambda x: x[0])]
