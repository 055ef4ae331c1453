"""The training core: config validation, batching, schedules, checkpoints, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, train_config
from mftcoder_pp.cli import main
from mftcoder_pp.config import ConfigError, load_config
from mftcoder_pp.model.load import TinyModelSpec, build_tiny, load_tokenizer
from mftcoder_pp.train import optim as O
from mftcoder_pp.train.batching import Stream, collate_packed, collate_padded
from mftcoder_pp.train.checkpoint import latest_checkpoint
from mftcoder_pp.train.config import TrainConfig
from mftcoder_pp.train.dataset import DataError, build_corpus, pretrain_text
from mftcoder_pp.losses.tokens import per_task_token_losses


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _pretrain(ws, out: Path, steps: int = 6) -> Path:
    cfg = train_config(out.parent / f"{out.name}.yaml", out=str(out), stage="pretrain",
                       data={"prepared": [str(ws["prepared"])], "max_length": 192},
                       model={"tokenizer": str(ws["tokenizer"]), "tiny": TINY}, adapter={"kind": "full"},
                       mixing={"strategy": "plain"},
                       optim={"max_steps": steps, "batch_size": 8, "per_task": False, "lr": 3e-3},
                       checkpoint_every=0, tensorboard=False)
    assert main(["train", str(cfg), "--quiet"]) == 0
    return out / "final"


def _sft_sections(ws, base: Path, out: Path, **over) -> dict:
    sections = {"out": str(out), "data": {"prepared": [str(ws["prepared"])], "max_length": 192},
                "model": {"path": str(base)}, "adapter": {"kind": "lora", "lora": {"rank": 4, "alpha": 8}},
                "mixing": {"strategy": "atds", "atds": {"refresh_every": 2}},
                "optim": {"max_steps": 8, "batch_size": 4, "grad_accum": 2, "lr_range": [5e-4, 2e-3]},
                "checkpoint_every": 3, "tensorboard": False}
    for key, value in over.items():
        sections[key] = {**sections[key], **value} if isinstance(value, dict) and key in sections else value
    return sections


@pytest.fixture(scope="module")
def base_model(tiny_workspace, tmp_path_factory) -> Path:
    return _pretrain(tiny_workspace, tmp_path_factory.mktemp("pretrain") / "run")


# -- config ------------------------------------------------------------------------------------

def test_config_errors_name_the_key(tmp_path):
    bad = train_config(tmp_path / "a.yaml", out="x", data={"prepared": ["p"]}, optim={"max_step": 3})
    with pytest.raises(ConfigError, match=r"optim\.max_step: unknown key"):
        load_config(bad, TrainConfig)
    plain = train_config(tmp_path / "b.yaml", out="x", data={"prepared": ["p"]}, mixing={"strategy": "plain"},
                         model={"tokenizer": "t"})
    with pytest.raises(ConfigError, match="per_task"):
        load_config(plain, TrainConfig)
    balanced = train_config(tmp_path / "c.yaml", out="x", data={"prepared": ["p"]}, model={"tokenizer": "t"},
                            mixing={"loss": "data_balanced"})
    with pytest.raises(ConfigError, match="strategy: plain"):
        load_config(balanced, TrainConfig)


@pytest.mark.parametrize("section, value, message", [
    ("dagg", {"every": 0}, r"modules\.dagg\.every: must be >= 1, got 0"),
    ("dagg", {"lam": 1.5}, r"modules\.dagg\.lam: must be in \[0, 1\]"),
    ("dagg", {"layers": []}, r"modules\.dagg\.layers: must be null or a non-empty list"),
    ("tiar", {"period": 0}, r"modules\.tiar\.period: must be >= 1"),
    ("tiar", {"buffer": 0}, r"modules\.tiar\.buffer: must be >= 1"),
    ("tiar", {"lr": 0.0}, r"modules\.tiar\.lr: must be > 0"),
    ("hmd", {"rank": 0}, r"modules\.hmd\.rank: must be >= 1"),
    ("hmd", {"decoupling_weight": -0.1}, r"modules\.hmd\.decoupling_weight: must be >= 0"),
    ("focal", {"ema": 1.0}, r"modules\.focal\.ema: must be in \[0, 1\)"),
    ("focal", {"weight": -1.0}, r"modules\.focal\.weight: must be >= 0"),
])
def test_module_settings_are_checked_when_the_config_loads(tmp_path, section, value, message):
    """A bad module setting fails at load time, naming the key, not after the data and model loaded."""
    bad = train_config(tmp_path / "m.yaml", out="x", data={"prepared": ["p"]}, model={"tokenizer": "t"},
                       modules={section: {"enabled": True, **value}})
    with pytest.raises(ConfigError, match=message):
        load_config(bad, TrainConfig)


def test_training_never_imports_generation_or_evaluation():
    """Early stopping gets its dev score as a callback: the training package sits below the stages."""
    code = ("import sys, mftcoder_pp.train.loop, mftcoder_pp.train.earlystop; "
            "print(sorted(m for m in sys.modules if m in ('mftcoder_pp.generate', 'mftcoder_pp.evaluate')))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_cli_reports_bad_data_with_file_and_line(tiny_workspace, tmp_path, capsys):
    bad = tmp_path / "prepared"
    bad.mkdir()
    (bad / "synthesis-python.jsonl").write_text('{"id": "a"}\nnot json\n')
    cfg = train_config(tmp_path / "t.yaml", out=str(tmp_path / "o"), data={"prepared": [str(bad)]},
                       model={"tokenizer": str(tiny_workspace["tokenizer"]), "tiny": TINY})
    assert main(["train", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "synthesis-python.jsonl:1: missing field" in err and "Traceback" not in err
    missing = train_config(tmp_path / "m.yaml", out=str(tmp_path / "o2"), data={"prepared": [str(tmp_path / "nope")]},
                           model={"path": str(tmp_path / "no-model")})
    assert main(["train", str(missing), "--quiet"]) == 2
    assert "tokenizer directory does not exist" in capsys.readouterr().err


def test_prepared_records_may_hold_line_separator_characters(tmp_path):
    """Records are written with ensure_ascii=False, so U+2028 / U+0085 appear raw inside JSON strings;
    they are not line breaks of the JSONL file."""
    from mftcoder_pp.data.records import read_prepared

    row = {"id": "a", "task": "chat", "language": "python", "instruction": "x\u2028y", "input": "",
           "output": "print('\u0085')\n"}
    (tmp_path / "chat-python.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_prepared([str(tmp_path)]) == [row]


def test_task_pattern_typo_is_an_error(tiny_workspace):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    with pytest.raises(DataError, match=r"'synthesis/pyton' matches no task"):
        build_corpus([str(tiny_workspace["prepared"])], tok, max_length=128, tasks=["synthesis/pyton"])


# -- data --------------------------------------------------------------------------------------

def test_corpus_masks_the_prompt(tiny_workspace):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    corpus = build_corpus([str(tiny_workspace["prepared"])], tok, max_length=256, dev_per_task=2)
    assert corpus.tasks == ["synthesis/go", "synthesis/python", "synthesis/rust"]
    ex = corpus.train["synthesis/rust"][0]
    response = tok.decode([t for t in ex.labels if t != -100])
    prompt = tok.decode(ex.input_ids[:ex.labels.index(next(t for t in ex.labels if t != -100))])
    assert response.endswith(tok.eos_token) and "Instruction" in prompt and "Instruction" not in response
    assert prompt.startswith("<|rust|>")  # language prefix token
    assert all(len(v) == 2 for v in corpus.dev.values())


def test_pretraining_text_is_the_program_with_its_line_break(tiny_workspace, tmp_path):
    """Prepared inputs lose their final newline in normalisation: pretraining must put it back, or the
    base learns `\"\"\"    acc = 0` on one line and no benchmark prompt ever looks like its data."""
    assert pretrain_text("def f():", "    return 1\n") == "def f():\n    return 1\n"
    assert pretrain_text("def f():\n", "    return 1\n") == "def f():\n    return 1\n"
    assert pretrain_text("", "print(1)\n") == "print(1)\n"
    rows = [json.loads(line) for line in (tiny_workspace["prepared"] / "synthesis-rust.jsonl").read_text().splitlines()]
    for r in rows:
        r["input"] = r["input"].rstrip("\n")  # as `mftpp prepare` writes it
    (tmp_path / "synthesis-rust.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    corpus = build_corpus([str(tmp_path)], tok, max_length=1024, stage="pretrain")
    texts = {tok.decode(ex.input_ids, skip_special_tokens=True) for ex in corpus.train["synthesis/rust"]}
    assert texts == {r["input"] + "\n" + r["output"] for r in rows}


def test_pretraining_can_also_see_the_prompt_schema(tiny_workspace, tmp_path):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    both = build_corpus([str(tiny_workspace["prepared"])], tok, max_length=1024, stage="pretrain",
                        pretrain_formats=("code", "prompt"), dev_per_task=2)
    code = build_corpus([str(tiny_workspace["prepared"])], tok, max_length=1024, stage="pretrain", dev_per_task=2)
    key = "synthesis/go"
    assert len(both.train[key]) == 2 * len(code.train[key]) and len(both.dev[key]) == 4  # 2 records, both ways
    dev_texts = [tok.decode(ex.input_ids) for ex in both.dev[key]]
    assert "Instruction:" not in dev_texts[0] and "Instruction:" in dev_texts[1]
    assert dev_texts[0].split("func ")[1].split("{")[0] == dev_texts[1].split("func ")[1].split("{")[0]  # the same record
    assert all(ex.labels == ex.input_ids for ex in both.train[key])  # pretraining: loss on every token
    for data, match in (({"pretrain_formats": ["code", "promt"]}, "pretrain_formats"),
                        ({"pretrain_formats": []}, "pretrain_formats")):
        bad = train_config(tmp_path / "p.yaml", out="x", stage="pretrain", adapter={"kind": "full"},
                           model={"tokenizer": "t"}, mixing={"strategy": "plain"}, optim={"per_task": False},
                           data={"prepared": ["p"], **data})
        with pytest.raises(ConfigError, match=match):
            load_config(bad, TrainConfig)
    sft = train_config(tmp_path / "s.yaml", out="x", model={"tokenizer": "t"},
                       data={"prepared": ["p"], "pretrain_formats": ["prompt"]})
    with pytest.raises(ConfigError, match="stage: pretrain"):
        load_config(sft, TrainConfig)


def test_stream_resumes_exactly(tiny_workspace):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    exs = build_corpus([str(tiny_workspace["prepared"])], tok, max_length=256).train["synthesis/python"]
    a = Stream(exs, 4, 0, "t", group_by_length=True)
    for _ in range(7):  # crosses an epoch boundary (22 examples -> 5 batches per epoch)
        a.next()
    b = Stream(exs, 4, 0, "t", group_by_length=True)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [[e.input_ids for e in a.next()] for _ in range(6)] == [[e.input_ids for e in b.next()] for _ in range(6)]


def test_packed_batches_give_the_padded_loss(tiny_workspace):
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    corpus = build_corpus([str(tiny_workspace["prepared"])], tok, max_length=256)
    exs = corpus.train["synthesis/python"][:3] + corpus.train["synthesis/go"][:3]
    model = build_tiny(TinyModelSpec(**TINY), tok).eval()
    with torch.no_grad():
        stats = []
        for batch in (collate_padded(exs, tok.pad_token_id), collate_packed(exs, tok.pad_token_id, 512)):
            logits = model(**batch.model_inputs()).logits
            stats.append(per_task_token_losses(logits, batch.labels, batch.token_task, 3))
    padded, packed = stats
    assert packed.token_count.tolist() == padded.token_count.tolist()
    assert torch.allclose(packed.loss_sum, padded.loss_sum, rtol=1e-4)
    assert collate_packed(exs, tok.pad_token_id, 512).input_ids.shape[0] < len(exs)


# -- optimisation ------------------------------------------------------------------------------

def test_schedule_and_per_task_rates():
    mult = [O.lr_multiplier(s, 100, 0.05) for s in range(100)]
    assert mult[:5] == [0.2, 0.4, 0.6, 0.8, 1.0] and mult[5] == 1.0 and mult[-1] == pytest.approx(1 / 95)
    rates = O.per_task_rates({"big": 10000, "mid": 100, "small": 1}, 1e-5, 5e-5)
    assert rates["big"] == pytest.approx(1e-5) and rates["small"] == pytest.approx(5e-5)
    assert 1e-5 < rates["mid"] < 5e-5
    assert [O.task_warmup(k, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert O.task_warmup(0, 0) == 1.0


def test_dagg_defaults_to_the_middle_layers():
    """... of the layers that train: with LoRA (6L) on 30 layers, 26 and 27."""
    from mftcoder_pp.train.terms import dagg_layers

    assert dagg_layers(None, 4) == [1, 2] and dagg_layers(None, 30) == [14, 15]
    assert dagg_layers(None, 1) == [0] and dagg_layers([-1], 4) == [-1]
    assert dagg_layers(None, 30, 24) == [26, 27] and dagg_layers(None, 30, 29) == [29]
    assert dagg_layers([-2, 27], 30, 24) == [-2, 27]
    with pytest.raises(ValueError, match=r"modules.dagg.layers: \[14\] lie below the lowest trained layer 24"):
        dagg_layers([14, -1], 30, 24)


def test_trainable_params_count_hmd_fusion(tiny_workspace, tmp_path):
    """The adapter report is taken after every adapter is applied: HMD-Fusion's branches count."""
    from mftcoder_pp.config import from_dict
    from mftcoder_pp.modules.hmd_fusion import hmd_parameters
    from mftcoder_pp.train.setup import build_model, describe

    tok = load_tokenizer(tiny_workspace["tokenizer"])
    sections = {"out": str(tmp_path / "o"), "data": {"prepared": ["p"]}, "model": {"tokenizer": "t", "tiny": TINY},
                "adapter": {"kind": "lora", "lora": {"rank": 4, "alpha": 8}}}
    reports = {}
    for hmd in (False, True):
        cfg = from_dict(TrainConfig, {**sections, "modules": {"hmd": {"enabled": hmd, "top_layers": 2, "rank": 4}}})
        model, report = build_model(cfg, tok)
        assert report.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert report.total_params == sum(p.numel() for p in model.parameters())
        reports[hmd] = (describe(report), sum(p.numel() for _, p in hmd_parameters(model)))
    (plain, none), (with_hmd, branches) = reports[False], reports[True]
    assert none == 0 and branches > 0
    assert with_hmd["trainable_params"] == plain["trainable_params"] + branches
    assert with_hmd["total_params"] == plain["total_params"] + branches


# -- runs --------------------------------------------------------------------------------------

def test_sft_run_writes_loadable_adapter_and_merged_model(tiny_workspace, base_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sft"
    cfg = train_config(tmp_path / "sft.yaml", **_sft_sections(tiny_workspace, base_model, out, merge=True,
                                                               tensorboard=True))
    assert main(["train", str(cfg), "--quiet"]) == 0
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(r["task"] in r["task_probability"] for r in rows)
    assert any(json.loads(json.dumps(r["task_probability"])) != rows[0]["task_probability"] for r in rows[2:])
    info = json.loads((out / "train_config.json").read_text())
    assert set(info["rates"]) == set(info["tasks"])  # one optimizer per task
    assert info["adapter"]["vocabulary_adapter_tokens"] and info["adapter"]["frozen_position_embeddings"] == []
    assert list((out / "tensorboard").iterdir())
    base = AutoModelForCausalLM.from_pretrained(str(base_model))
    tuned = PeftModel.from_pretrained(base, str(out / "final")).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged")).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.allclose(tuned(ids).logits, merged(ids).logits, atol=1e-4)
    # a second run into the same directory must not overwrite it silently
    assert main(["train", str(cfg), "--quiet"]) == 2


def test_resume_refuses_a_changed_config(tiny_workspace, base_model, tmp_path, capsys):
    out = tmp_path / "sft"
    sections = _sft_sections(tiny_workspace, base_model, out, optim={"max_steps": 4})
    cfg = train_config(tmp_path / "a.yaml", **sections)
    assert main(["train", str(cfg), "--quiet"]) == 0
    sections["optim"]["lr_range"] = [1e-4, 1e-3]
    changed = train_config(tmp_path / "b.yaml", **sections)
    assert main(["train", str(changed), "--resume", "--quiet"]) == 2
    assert "optim.lr_range" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["data_balanced", "coba"])
def test_mftcoder_baseline_losses_run(tiny_workspace, base_model, tmp_path, loss, capsys):
    out = tmp_path / loss
    cfg = train_config(tmp_path / "c.yaml", **_sft_sections(
        tiny_workspace, base_model, out, data={"dev_per_task": 2},
        mixing={"strategy": "plain", "loss": loss, "coba": {"eval_every": 2, "warmup_points": 2, "window": 3}},
        optim={"per_task": False, "lr": 1e-3, "max_steps": 6}))
    assert main(["train", str(cfg)]) == 0
    rows = _metrics(out)
    assert len(rows) == 6 and all(r["task"] is None for r in rows)
    # stderr is not a terminal here: plain progress lines, the first step's and the last's.
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train: step")]
    assert lines[0].startswith("train: step  1/6  loss ") and lines[-1].startswith("train: step  6/6  loss ")
    assert "ETA" in lines[-1] and "\r" not in "".join(lines)
    if loss == "coba":
        assert abs(sum(rows[-1]["coba_weight"].values()) - 1) < 1e-6


def test_kill_and_resume_reproduces_the_uninterrupted_run(tiny_workspace, base_model, tmp_path):
    steps, kill_at = 12, 10
    ref = tmp_path / "ref"
    sections = _sft_sections(tiny_workspace, base_model, ref, optim={"max_steps": steps}, checkpoint_every=4)
    assert main(["train", str(train_config(tmp_path / "ref.yaml", **sections)), "--quiet"]) == 0

    out = tmp_path / "killed"
    cfg = train_config(tmp_path / "killed.yaml", **{**sections, "out": str(out)})
    # The run SIGKILLs itself right after logging step `kill_at` (steps 9-10 done, past the step-8
    # checkpoint): deterministic, where killing from outside races the run's own speed.
    script = (
        "import os, signal, sys\n"
        "from mftcoder_pp.train import logger\n"
        "log = logger.TrainLogger.log\n"
        "def log_then_die(self, record):\n"
        "    log(self, record)\n"
        f"    if record['step'] == {kill_at}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "logger.TrainLogger.log = log_then_die\n"
        "from mftcoder_pp.cli import main\n"
        f"sys.exit(main(['train', {str(cfg)!r}, '--quiet']))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == kill_at
    assert not (out / "final").exists()
    assert int(latest_checkpoint(out).name.split("-")[1]) == 8
    assert main(["train", str(cfg), "--resume", "--quiet"]) == 0
    a, b = _metrics(ref), _metrics(out)
    assert [r["step"] for r in b] == list(range(1, steps + 1))
    assert [(r["task"], r["loss"]) for r in a] == [(r["task"], r["loss"]) for r in b]
    assert [r["task_probability"] for r in a] == [r["task_probability"] for r in b]


def test_end_to_end_pretrain_sft_generate_evaluate(tiny_workspace, base_model, tmp_path):
    """Tiny pretrain (fixture) → SFT with ATDS, per-task optimizers and early stopping on pass@1 →
    `mftpp generate` → `mftpp evaluate`, asserting on the files each stage wrote."""
    out = tmp_path / "sft"
    cfg = train_config(tmp_path / "sft.yaml", **_sft_sections(
        tiny_workspace, base_model, out, optim={"max_steps": 6},
        early_stopping={"every": 3, "benchmark": "synthetic-python", "limit": 2, "max_new_tokens": 24,
                        "patience": 5}))
    assert main(["train", str(cfg), "--quiet"]) == 0
    rows = _metrics(out)
    dev = [r for r in rows if "dev_pass@1" in r]
    assert [r["step"] for r in dev] == [3, 6] and all(0 <= r["dev_pass@1"] <= 1 for r in dev)
    assert (out / "best" / "adapter_config.json").exists()
    assert (out / "dev" / "step-000003" / "eval" / "summary.json").exists()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and set(summary["early_stopping"]["pass@1"]) == {"3", "6"}

    gen = tmp_path / "gen"
    assert main(["generate", "--model", str(out / "final"), "--benchmark", "synthetic-rust", "--out", str(gen),
                 "--limit", "3", "--max-new-tokens", "24"]) == 0
    samples = [json.loads(line) for line in (gen / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3
    meta = json.loads((gen / "samples.jsonl.meta.json").read_text())
    assert meta["temperature"] == 0 and meta["max_new_tokens"] == 24
    ev = tmp_path / "eval"
    assert main(["evaluate", "--benchmark", "synthetic-rust", "--samples", str(gen / "samples.jsonl"),
                 "--out", str(ev), "--k", "1", "--quiet"]) == 0
    result = json.loads((ev / "summary.json").read_text())
    assert result["num_samples"] == 3 and sum(result["status_counts"].values()) == 3


def test_adapter_of_a_relative_base_path_loads_from_elsewhere(tiny_workspace, base_model, tmp_path, monkeypatch):
    """A config naming its base by a relative path still gives an adapter that loads from any directory."""
    import shutil

    from mftcoder_pp.model.load import load_for_inference

    shutil.copytree(base_model, tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    cfg = train_config(tmp_path / "rel.yaml", **_sft_sections(tiny_workspace, Path("base"), Path("out"),
                                                               optim={"max_steps": 1}, checkpoint_every=0))
    assert main(["train", str(cfg), "--quiet"]) == 0
    monkeypatch.chdir(tmp_path / "out")
    model, _ = load_for_inference(tmp_path / "out" / "final")
    assert model is not None
