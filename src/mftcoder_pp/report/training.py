"""Training diagnostics drawn from a run's `metrics.jsonl` (matplotlib, Agg canvas: no display, no pyplot).

    training_figures("runs/x/metrics.jsonl", "runs/x/figures")  # -> {figure: path of the PNG written}

Figures (each skipped, without error, when the run logged none of its data):

* ``task_loss`` — the paper's Figure 2 (left): per-task token-mean cross-entropy over steps, and the
  step loss. With one task per optimizer step (ATDS / temperature / uniform mixing) a task has a point
  only on the steps that drew it; its curve joins those points.
* ``aux_losses`` — Figure 2 (middle): the MFTCoder++ auxiliary terms as logged, unweighted: ``dagg``
  (DAGG, on its active steps), ``adv`` (TIAR, model phases only), ``align`` (focal alignment) and
  ``decoupling`` (HMD), log scale (their magnitudes differ by orders).
* ``loss_breakdown`` — Figure 2 (right): the total objective of Eq. 11 per step as a stack of the task
  loss and the λ-weighted terms, λ from ``train_config.json`` beside the metrics file
  (``config.modules.dagg.weight`` = λ1, ``tiar.weight`` = λ2, ``focal.weight`` = λ3,
  ``hmd.decoupling_weight``; the schema defaults when that file is absent). A term not computed on a
  step (DAGG off-steps with ``every`` > 1, TIAR's discriminator phases) counts 0 there, as in the
  objective. The logged task ``loss`` is the step's token-mean CE, which is the task term exactly with
  ``mixing.loss: token_mean`` and one task per step (for data_balanced / CoBa it is the unweighted mean).
* ``task_probability`` — ATDS's sampling distribution π(t) over steps (``task_probability``).
* ``gates`` — HMD-Fusion's mean gate γ (weight of the shared branch; 1 − γ goes to the language branch)
  per language over steps (``gate``).
* ``discriminator`` — TIAR's discriminator accuracy over steps: on its replay buffer before each D
  update (``discriminator_accuracy``, D phases) and on the current batch in model phases
  (``tiar_accuracy``), with the chance line 1/K, K = ``len(train_config.json["tasks"])`` (else the
  number of tasks seen in the metrics).

Smoothing: ``smoothing`` = a in [0, 1) is a debiased exponential moving average over each series' own
points, ``m_n = a·m_{n-1} + (1 − a)·x_n``, plotted as ``m_n / (1 − a^n)`` (TensorBoard's smoother;
the division removes the pull toward 0 at the start). Sparse series (a task's loss, a language's gate)
are smoothed over the steps where they exist, not over the steps in between. With a > 0 the raw
values are drawn faintly behind the smoothed line; 0 draws the raw values only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..data.records import json_objects

FIGURES = {
    "task_loss": "train_task_loss.png",
    "aux_losses": "train_aux_losses.png",
    "loss_breakdown": "train_loss_breakdown.png",
    "task_probability": "train_task_probability.png",
    "gates": "train_gates.png",
    "discriminator": "train_discriminator_accuracy.png",
}
AUX_TERMS = ("dagg", "adv", "align", "decoupling")
AUX_LABELS = {"dagg": "DAGG (λ1)", "adv": "TIAR adversarial (λ2)", "align": "focal alignment (λ3)",
              "decoupling": "HMD decoupling"}

Series = tuple[list[float], list[float]]  # (steps, values)


def read_metrics(path: str | Path) -> list[dict]:
    """The logged records, in file order; a torn last line (a run killed mid-write) is skipped."""
    rows = []
    for _, rec in json_objects(path, ValueError, "metrics file", torn_tail=True):
        if isinstance(rec.get("step"), (int, float)):
            rows.append(rec)
    return rows


def read_run_info(metrics_path: str | Path) -> dict:
    """``train_config.json`` beside the metrics file, or {} when absent or unreadable."""
    path = Path(metrics_path).parent / "train_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def term_weights(info: Mapping) -> dict[str, float]:
    """λ of each auxiliary term, read from train_config.json's ``config.modules`` through the train
    config schema, so a missing key takes the schema's default and a bad one is an error."""
    from ..config import from_dict
    from ..train.config import ModulesConfig

    modules = (info.get("config") or {}).get("modules") or {}  # absent file or section: the defaults
    return from_dict(ModulesConfig, modules, where="train_config.json", path="config.modules").term_weights()


def ema(values: Iterable[float], smoothing: float) -> list[float]:
    """Debiased exponential moving average (see the module docstring); smoothing 0 returns the values."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out, m, n = [], 0.0, 0
    for x in values:
        n += 1
        m = smoothing * m + (1 - smoothing) * x
        out.append(m / (1 - smoothing ** n) if smoothing else x)
    return out


def scalar_series(rows: list[dict], key: str) -> Series:
    steps, values = [], []
    for r in rows:
        v = r.get(key)
        if _finite(v):
            steps.append(r["step"])
            values.append(float(v))
    return steps, values


def keyed_series(rows: list[dict], key: str) -> dict[str, Series]:
    """{name: (steps, values)} of a per-task / per-language dict field, names in first-seen order."""
    out: dict[str, Series] = {}
    for r in rows:
        d = r.get(key)
        if not isinstance(d, dict):
            continue
        for name, v in d.items():
            if _finite(v):
                s = out.setdefault(str(name), ([], []))
                s[0].append(r["step"])
                s[1].append(float(v))
    return out


def training_figures(metrics_path: str | Path, out_dir: str | Path, smoothing: float = 0.6,
                     dpi: int = 90, palette: bool = False) -> dict[str, str]:
    """Write the figures whose data the run logged; returns {figure key: path of the PNG} (keys: FIGURES).

    ``train_config.json`` in the metrics file's directory supplies the λ weights and the task count;
    without it the schema defaults and the tasks seen in the metrics are used. ``palette``: write
    8-bit palette PNGs (128 colours, via Pillow), about a third of the size, for committing.
    """
    ema([], smoothing)  # validates
    rows = sorted(read_metrics(metrics_path), key=lambda r: r["step"])
    info = read_run_info(metrics_path)
    out_dir = Path(out_dir)
    written: dict[str, str] = {}
    if not rows:
        return written
    tasks = info.get("tasks") if isinstance(info.get("tasks"), list) else None
    seen = {t for r in rows for key in ("task_loss", "task_probability") if isinstance(r.get(key), dict)
            for t in r[key]}
    num_tasks = len(tasks) if tasks else len(seen)

    panels = {
        "task_loss": lambda fig: plot_task_loss(fig.add_subplot(), rows, smoothing),
        "aux_losses": lambda fig: plot_aux_losses(fig.add_subplot(), rows, smoothing),
        "loss_breakdown": lambda fig: plot_loss_breakdown(fig, rows, term_weights(info), smoothing),
        "task_probability": lambda fig: plot_task_probability(fig.add_subplot(), rows),
        "gates": lambda fig: plot_gates(fig.add_subplot(), rows, smoothing),
        "discriminator": lambda fig: plot_discriminator(fig.add_subplot(), rows, num_tasks, smoothing),
    }
    for key, draw in panels.items():
        fig = Figure(figsize=(6.4, 5.6 if key == "loss_breakdown" else 4.2))
        if not draw(fig):
            continue
        # fixed margins: constrained layout doubles the drawing time
        fig.subplots_adjust(left=0.11, right=0.98, bottom=0.09 if key == "loss_breakdown" else 0.11, top=0.93,
                            hspace=0.3)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / FIGURES[key]
        _save(fig, path, dpi, palette)
        written[key] = str(path)
    return written


# ------------------------------------------------------------------------------------------- panels
# Each draws on `ax` and returns False (drawing nothing worth saving) when its data is absent.


def plot_task_loss(ax, rows: list[dict], smoothing: float) -> bool:
    per_task = keyed_series(rows, "task_loss")
    if not per_task:
        return False
    colours = _colours(len(per_task))
    for (name, (xs, ys)), c in zip(sorted(per_task.items()), colours):
        _line(ax, xs, ys, smoothing, name, c)
    xs, ys = scalar_series(rows, "loss")
    if xs and len(per_task) > 1:
        ax.plot(xs, ema(ys, smoothing), color="black", lw=1.0, ls="--", label="step loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("token-mean cross-entropy (nats)")
    ax.set_title("per-task loss" + _smooth_note(smoothing), fontsize=9)
    _legend(ax, len(per_task) + 1)
    return True


def plot_aux_losses(ax, rows: list[dict], smoothing: float) -> bool:
    drawn = False
    for term, c in zip(AUX_TERMS, _colours(len(AUX_TERMS))):
        xs, ys = scalar_series(rows, term)
        keep = [(x, y) for x, y in zip(xs, ys) if y > 0]  # log scale
        if not keep:
            continue
        xs, ys = [x for x, _ in keep], [y for _, y in keep]
        _line(ax, xs, ys, smoothing, f"{AUX_LABELS[term]} ({len(xs)} steps)", c)
        drawn = True
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # plain text: mathtext is slow
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("term value (unweighted)")
    ax.set_title("auxiliary losses" + _smooth_note(smoothing), fontsize=9)
    _legend(ax, 4)
    return True


def plot_loss_breakdown(fig, rows: list[dict], weights: Mapping[str, float], smoothing: float) -> bool:
    """Top: the total as a stack of task loss + λ·terms. Bottom (when any term was logged): the λ-weighted
    terms alone, stacked on their own scale (next to the task loss they are usually a thin band)."""
    xs, task = scalar_series(rows, "loss")
    if not xs:
        return False
    by_step = {r["step"]: r for r in rows}
    terms = []
    for term in AUX_TERMS:
        vals = [by_step[s].get(term) for s in xs]
        if any(_finite(v) for v in vals):
            w = weights[term]
            terms.append((f"{w:g} × {term}", ema([w * float(v) if _finite(v) else 0.0 for v in vals], smoothing)))
    layers = [("task loss", ema(task, smoothing))] + terms
    colours = ["#4c72b0"] + _colours(len(AUX_TERMS), offset=1)
    ax = fig.add_subplot(2, 1, 1) if terms else fig.add_subplot()
    ax.stackplot(xs, *[v for _, v in layers], labels=[n for n, _ in layers], colors=colours[:len(layers)],
                 alpha=0.85)
    total = [sum(v[i] for _, v in layers) for i in range(len(xs))]
    ax.plot(xs, total, color="black", lw=0.8, label="total (Eq. 11)")
    ax.set_ylabel("loss")
    ax.set_title("total loss: task + λ-weighted terms" + _smooth_note(smoothing), fontsize=9)
    _legend(ax, len(layers) + 1)
    if not terms:
        ax.set_xlabel("optimizer step")
        return True
    shares = ", ".join(f"{n.split(' × ')[-1]} {sum(v) / max(sum(total), 1e-12):.1%}" for n, v in terms)
    low = fig.add_subplot(2, 1, 2, sharex=ax)
    low.stackplot(xs, *[v for _, v in terms], labels=[n for n, _ in terms], colors=colours[1:1 + len(terms)],
                  alpha=0.85)
    low.set_xlabel("optimizer step")
    low.set_ylabel("λ-weighted terms")
    low.set_title(f"the auxiliary part alone; share of the total: {shares}", fontsize=8)
    _legend(low, len(terms))
    return True


def plot_task_probability(ax, rows: list[dict]) -> bool:
    per_task = keyed_series(rows, "task_probability")
    if not per_task:
        return False
    for (name, (xs, ys)), c in zip(sorted(per_task.items()), _colours(len(per_task))):
        ax.plot(xs, ys, color=c, lw=1.2, label=name, drawstyle="steps-post")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("π(task)")
    ax.set_ylim(bottom=0)
    ax.set_title("task sampling probability (ATDS π; refreshed every K steps)", fontsize=9)
    _legend(ax, len(per_task))
    return True


def plot_gates(ax, rows: list[dict], smoothing: float) -> bool:
    per_lang = keyed_series(rows, "gate")
    if not per_lang:
        return False
    for (name, (xs, ys)), c in zip(sorted(per_lang.items()), _colours(len(per_lang))):
        _line(ax, xs, ys, smoothing, name, c)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean gate γ (shared-branch weight)")
    ax.set_title("HMD-Fusion gate per language" + _smooth_note(smoothing), fontsize=9)
    _legend(ax, len(per_lang))
    return True


def plot_discriminator(ax, rows: list[dict], num_tasks: int, smoothing: float) -> bool:
    d_x, d_y = scalar_series(rows, "discriminator_accuracy")
    m_x, m_y = scalar_series(rows, "tiar_accuracy")
    if not d_x and not m_x:
        return False
    if d_x:
        _line(ax, d_x, d_y, smoothing, "D on its replay buffer (D phases, before its update)", "#c44e52")
    if m_x:
        _line(ax, m_x, m_y, smoothing, "D on the current batch (model phases)", "#4c72b0", marker=True)
    if num_tasks > 0:
        ax.axhline(1 / num_tasks, color="black", lw=0.8, ls="--", label=f"chance 1/{num_tasks}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("discriminator accuracy")
    ax.set_title("TIAR discriminator accuracy" + _smooth_note(smoothing), fontsize=9)
    _legend(ax, 3)
    return True


# ------------------------------------------------------------------------------------------ helpers


def _save(fig: Figure, path: Path, dpi: int, palette: bool) -> None:
    FigureCanvasAgg(fig)
    if not palette:
        fig.savefig(path, dpi=dpi)
        return
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    buf.seek(0)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _line(ax, xs, ys, smoothing: float, label: str, colour, marker: bool = False) -> None:
    style = {"marker": "o", "markersize": 2 if marker else 3} if marker or len(xs) < 3 else {}
    if smoothing:
        ax.plot(xs, ys, color=colour, lw=0.6, alpha=0.25, **style)
        ax.plot(xs, ema(ys, smoothing), color=colour, lw=1.4, label=label, **(style if len(xs) < 3 else {}))
    else:
        ax.plot(xs, ys, color=colour, lw=1.2, label=label, **style)


def _colours(n: int, offset: int = 0) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n + offset <= 10 else "tab20"]
    return [cmap(i + offset) for i in range(n)]


def _legend(ax, entries: int) -> None:
    ax.legend(fontsize=6, ncol=2 if entries > 6 else 1, loc="best")


def _smooth_note(smoothing: float) -> str:
    return f" (EMA {smoothing:g})" if smoothing else ""
