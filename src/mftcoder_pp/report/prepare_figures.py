"""The paper's Figure 3 panels, drawn from prepared data (matplotlib, Agg canvas: no display, no pyplot).

(a) share of examples per language, as found and after temperature balancing (Eq. 13);
(b) sampling probability per task for several temperatures, including the paper's printed
    T = 0.7, which sharpens the imbalance instead of flattening it;
(c) token overlap across languages: Jaccard similarity of the token vocabularies of each pair (the
    caller chooses the vocabularies; prepare uses each language's 200 most frequent tokens);
(d) the entropy-ordered curriculum (Eq. 14): tasks by mean token entropy, low to high.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data.sampling import temperature_probabilities

PANEL_TEMPERATURES = (0.7, 1.0, 1 / 0.7, 2.0, 5.0)


def language_balance(ax, sizes: Mapping[str, int], temperature: float) -> None:
    langs = sorted(sizes, key=lambda k: -sizes[k])
    before = temperature_probabilities({k: sizes[k] for k in langs}, 1.0)
    after = temperature_probabilities({k: sizes[k] for k in langs}, temperature)
    xs = range(len(langs))
    ax.bar([x - 0.2 for x in xs], [before[k] for k in langs], width=0.4, label="as found (T = 1)")
    ax.bar([x + 0.2 for x in xs], [after[k] for k in langs], width=0.4, label=f"balanced (T = {temperature:.3g})")
    ax.set_xticks(list(xs), [f"{k}\n{sizes[k]}" for k in langs], fontsize=8)
    ax.set_ylabel("share of sampled examples")
    ax.set_title("(a) languages before / after temperature balancing", fontsize=9)
    ax.legend(fontsize=7)


def temperature_curves(ax, sizes: Mapping[str, int], temperatures: Sequence[float] = PANEL_TEMPERATURES) -> None:
    tasks = sorted((k for k in sizes if sizes[k] > 0), key=lambda k: -sizes[k])
    xs = range(len(tasks))
    for t in temperatures:
        p = temperature_probabilities({k: sizes[k] for k in tasks}, t)
        label = f"T = {t:.3g}" + (" (paper's printed value: sharpens)" if abs(t - 0.7) < 1e-9 else "")
        ax.plot(list(xs), [p[k] for k in tasks], marker="o", markersize=3, label=label,
                linestyle="--" if t < 1 else "-")
    ax.set_xticks(list(xs), tasks, rotation=60, ha="right", fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("P(task) ∝ |D|^(1/T)")
    ax.set_title("(b) sampling probability vs temperature (tasks by size)", fontsize=9)
    ax.legend(fontsize=6)


def token_overlap(ax, vocab: Mapping[str, set[str]]) -> dict[str, dict[str, float]]:
    langs = sorted(vocab)
    matrix = [[_jaccard(vocab[a], vocab[b]) for b in langs] for a in langs]
    im = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(langs)), langs, fontsize=8)
    for i in range(len(langs)):
        for j in range(len(langs)):
            ax.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i][j] < 0.6 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("(c) token overlap across languages (Jaccard of frequent tokens)", fontsize=9)
    return {a: {b: matrix[i][j] for j, b in enumerate(langs)} for i, a in enumerate(langs)}


def curriculum(ax, order: Sequence[tuple[str, float]]) -> None:
    names = [t for t, _ in order][::-1]  # lowest entropy at the top
    ax.barh(range(len(names)), [h for _, h in order][::-1])
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("mean token entropy (nats)")
    ax.set_title("(d) curriculum: tasks by mean token entropy, low to high", fontsize=9)


def save_figure3(out_dir: str | Path, language_sizes: Mapping[str, int], task_sizes: Mapping[str, int],
                 temperature: float, vocab: Mapping[str, set[str]],
                 order: Sequence[tuple[str, float]]) -> dict[str, str]:
    """Write each panel as its own PNG plus the four together; returns {panel: file name}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = {
        "fig3a_languages.png": lambda ax: language_balance(ax, language_sizes, temperature),
        "fig3b_temperature.png": lambda ax: temperature_curves(ax, task_sizes),
        "fig3c_token_overlap.png": lambda ax: token_overlap(ax, vocab),
        "fig3d_curriculum.png": lambda ax: curriculum(ax, order),
    }
    written = {}
    for name, draw in panels.items():
        fig = Figure(figsize=(6.4, 4.8), layout="constrained")
        draw(fig.add_subplot())
        _save(fig, out_dir / name)
        written[name[:5]] = name
    fig = Figure(figsize=(13, 10), layout="constrained")
    for i, draw in enumerate(panels.values(), 1):
        draw(fig.add_subplot(2, 2, i))
    _save(fig, out_dir / "fig3.png")
    written["fig3"] = "fig3.png"
    return written


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0
