"""Training diagnostics figures from a synthetic metrics.jsonl (+ train_config.json): PNGs written,
figures whose data is absent skipped without error, smoothing and λ weights read from the run."""

from __future__ import annotations

import json
import math

import pytest

from mftcoder_pp.report.training import FIGURES, ema, term_weights, training_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = ["synthesis/python", "synthesis/rust", "synthesis/go"]


def _rows(steps: int = 40, modules: bool = True) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        task = TASKS[s % 3]
        lang = task.split("/")[1]
        r = {"step": s, "phase": "all", "task": task, "loss": 3.0 / s ** 0.3, "lr": 1e-4, "grad_norm": 1.0,
             "tokens": 100 * s, "tokens_per_s": 1000.0, "task_loss": {task: 3.0 / s ** 0.3},
             "task_accuracy": {task: 0.5}, "task_tokens": {task: 100}, "language_loss": {lang: 3.0 / s ** 0.3},
             "task_probability": {t: (0.5 if t == TASKS[(s // 10) % 3] else 0.25) for t in TASKS}}
        if modules:
            r.update(dagg=0.01 / s, align=0.5 / s, decoupling=0.02, gate={lang: 0.5 + 0.005 * s})
            if (s - 1) // 5 % 2:  # TIAR model phases
                r.update(adv=0.05, tiar_accuracy=float(s % 2))
            else:
                r.update(discriminator_loss=1.0, discriminator_accuracy=max(0.34, 1 - s / 40))
        rows.append(r)
    return rows


def _write(run, rows, config: dict | None = None, tasks=TASKS):
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if config is not None:
        (run / "train_config.json").write_text(json.dumps({"config": config, "tasks": tasks}))
    return run / "metrics.jsonl"


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(24)
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return head[:8] == PNG_MAGIC and head[12:16] == b"IHDR" and width > 100 and height > 100


def test_every_figure_is_written_as_png(tmp_path):
    config = {"modules": {"dagg": {"weight": 0.3}, "tiar": {"weight": 0.1}, "focal": {"weight": 0.2},
                          "hmd": {"decoupling_weight": 0.1}}}
    metrics = _write(tmp_path / "run", _rows(), config)
    written = training_figures(metrics, tmp_path / "fig")
    assert set(written) == set(FIGURES)
    for key, path in written.items():
        assert path.endswith(FIGURES[key]) and _is_png(path), key
    small = training_figures(metrics, tmp_path / "small", palette=True)  # 8-bit palette PNGs
    for key, path in small.items():
        assert _is_png(path) and open(path, "rb").read()[25] == 3, key  # IHDR colour type 3: palette


def test_missing_data_skips_figures(tmp_path):
    # plain SFT with plain mixing: no modules, no π → only the per-task loss and the breakdown
    rows = [{k: v for k, v in r.items() if k != "task_probability"} for r in _rows(modules=False)]
    metrics = _write(tmp_path / "plain", rows)  # no train_config.json either
    written = training_figures(metrics, tmp_path / "fig_plain", smoothing=0.0)
    assert set(written) == {"task_loss", "loss_breakdown"}
    assert sorted(p.name for p in (tmp_path / "fig_plain").iterdir()) == sorted(
        FIGURES[k] for k in written)

    # only some modules; a truncated last line (a killed run) and a NaN accuracy are tolerated
    rows = _rows(12)
    for r in rows:
        for k in ("dagg", "adv", "decoupling", "discriminator_accuracy", "discriminator_loss"):
            r.pop(k, None)
        if "tiar_accuracy" in r:
            r["tiar_accuracy"] = math.nan
    metrics = _write(tmp_path / "some", rows, {"modules": {}}, tasks=TASKS)
    with metrics.open("a") as f:
        f.write('{"step": 13, "loss": 1.')
    written = training_figures(metrics, tmp_path / "fig_some")
    assert set(written) == {"task_loss", "aux_losses", "loss_breakdown", "task_probability", "gates"}

    # empty file: nothing written, no error, no directory created
    empty = tmp_path / "empty" / "metrics.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    assert training_figures(empty, tmp_path / "fig_empty") == {}
    assert not (tmp_path / "fig_empty").exists()


def test_weights_and_smoothing():
    assert term_weights({}) == {"dagg": 0.3, "adv": 0.1, "align": 0.2, "decoupling": 0.1}  # schema defaults
    w = term_weights({"config": {"modules": {"dagg": {"weight": 1.5}, "hmd": {"decoupling_weight": 0.0}}}})
    assert w["dagg"] == 1.5 and w["decoupling"] == 0.0 and w["adv"] == 0.1
    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    assert ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # debiased: no pull toward 0
    s = ema([0.0, 10.0], 0.5)
    assert s[0] == 0.0 and s[1] == pytest.approx(10 * 0.5 / 0.75)
    with pytest.raises(ValueError):
        ema([1.0], 1.0)
