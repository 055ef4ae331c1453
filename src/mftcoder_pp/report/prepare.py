"""The preprocessing report: `report.json` (everything, machine-readable) and `report.md` (the same
for a person: counts per step, rejections with examples, decontamination hits, figures)."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(out_dir: str | Path, report: dict) -> None:
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")


def render_markdown(report: dict) -> str:
    made = report["created_by"]
    lines = ["# Preprocessing report", "",
             f"Made by mftcoder_pp {made['mftcoder_pp']} (commit {made.get('commit') or 'unknown'}) from "
             f"`{made['config_path']}`, seed {made['seed']}, strict={made['strict']}. "
             f"{report['totals']['read']} examples read, {report['totals']['kept']} kept, "
             f"{report['totals']['rejected']} rejected.", ""]

    lines += ["## Counts per step", "", "Examples per task (task type / language) after each step.", ""]
    steps = report["steps"]
    keys = sorted({k for s in steps for k in s["by_task"]})
    lines.append("| task | " + " | ".join(s["step"] for s in steps) + " |")
    lines.append("|---|" + "---:|" * len(steps))
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(str(s["by_task"].get(key, 0)) for s in steps) + " |")
    langs = sorted({k for s in steps for k in s["by_language"]})
    for lang in langs:
        row = " | ".join(str(s["by_language"].get(lang, 0)) for s in steps)
        lines.append(f"| *{lang} (all tasks)* | {row} |")
    lines.append("| **total** | " + " | ".join(f"**{s['total']}**" for s in steps) + " |")
    skipped = report.get("steps_off", [])
    if skipped:
        lines += ["", "Steps switched off: " + ", ".join(skipped) + "."]

    lines += ["", "## Sources", "", "| source | format | path | read | rejected on reading | kept |",
              "|---|---|---|---:|---:|---:|"]
    for s in report["sources"]:
        lines.append(f"| {s['name']} | {s['format']} | `{s['path']}` | {s['read']} | {s['rejected_on_read']} | "
                     f"{s['kept']} |")

    lines += ["", "## Output files", "", "| file | examples |", "|---|---:|"]
    lines += [f"| `{name}` | {n} |" for name, n in report["outputs"].items()]

    lines += ["", "## Rejected examples", ""]
    if not report["rejected"]:
        lines.append("None.")
    for reason, info in sorted(report["rejected"].items(), key=lambda kv: -kv[1]["count"]):
        lines += [f"### {reason}: {info['count']} (step: {info['step']})", ""]
        for ex in info["examples"]:
            lines.append(f"- `{ex['where']}`: {ex['detail']}")
            if ex.get("snippet"):
                snippet = ex["snippet"].replace("`", "'").replace("\n", "⏎")
                lines.append(f"  `{snippet}`")
        if info["count"] > len(info["examples"]):
            lines.append(f"- … and {info['count'] - len(info['examples'])} more (all in report.json: `removed`)")
        lines.append("")

    dec = report.get("decontamination")
    lines += ["## Decontamination", ""]
    if dec is None:
        lines.append("Switched off.")
    else:
        lines += [f"n-gram size {dec['ngram']} tokens; a training example is removed when it contains at least "
                  f"{dec['min_overlap']:.0%} of a benchmark text's n-grams or {dec['min_shared']} of them; n-grams in "
                  f"more than {dec['boilerplate_tasks']} tasks of one benchmark are boilerplate "
                  f"({dec['boilerplate_ngrams']} ignored). Benchmarks: {', '.join(dec['benchmarks'])}.", "",
                  f"Removed: {len(dec['removed'])}.", ""]
        if dec["removed"]:
            lines += ["| example | where | benchmark | task | field | shared | overlap |",
                      "|---|---|---|---|---|---:|---:|"]
            for r in dec["removed"]:
                lines.append(f"| {r['id']} | `{r['where']}` | {r['benchmark']} | {r['task_id']} | {r['field']} | "
                             f"{r['shared']} | {r['overlap']:.0%} |")
    anon = report.get("anonymisation")
    if anon is not None:
        lines += ["", "## Anonymisation", "", ", ".join(f"{k}: {v}" for k, v in anon.items()) + "."]

    samp = report["sampling"]
    lines += ["", "## Sampling and curriculum", "",
              f"Temperature T = {samp['temperature']:.4g} (P ∝ |D|^(1/T)); per task:", "",
              "| task | examples | P(task) |", "|---|---:|---:|"]
    for key, p in samp["probabilities"].items():
        lines.append(f"| {key} | {report['steps'][-1]['by_task'].get(key, 0)} | {p:.3f} |")
    if report.get("curriculum"):
        lines += ["", "Curriculum (mean token entropy, low to high): " +
                  ", ".join(f"{c['task']} ({c['mean_entropy']:.2f})" for c in report["curriculum"]) + "."]
    if report.get("figures"):
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in report["figures"].items() if name != "fig3"]
    return "\n".join(lines) + "\n"
