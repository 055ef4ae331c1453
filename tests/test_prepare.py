"""`prepare` end to end: files per task, the report's counts, bad input in both modes, shipped configs."""

import dataclasses
import json
from pathlib import Path

import pytest

from mftcoder_pp.benchmarks import get_benchmark
from mftcoder_pp.config import ConfigError, load_config
from mftcoder_pp.data.records import validate
from mftcoder_pp.prepare import PrepareConfig, PrepareError, prepare, run_prepare

DATA = Path(__file__).parent / "data" / "prepare"
ROOT = Path(__file__).parent.parent
GOOD = {"id": "g", "task": "synthesis", "language": "python", "instruction": "Return one.", "input": "",
        "output": "def one():\n    return 1\n"}


def write_config(tmp_path, body: str) -> Path:
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(body)
    return cfg


def test_prepare_end_to_end(tmp_path):
    he = get_benchmark("humaneval").tasks()[3]
    rows = [
        {**GOOD, "id": "ok-1", "output": LONG},
        {**GOOD, "id": "dup-of-ok-1", "output": LONG},  # exact duplicate
        {**GOOD, "id": "near", "output": LONG.replace("counts[i] += 1", "counts[i] += 1  # count it")},  # near dup
        {**GOOD, "id": "syntax", "output": "def broken(:\n    pass\n"},
        {**GOOD, "id": "pasted", "instruction": "Solve.", "output": he.prompt + he.reference},  # contamination
    ]
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    cfg = write_config(tmp_path, f"""
sources:
  - {{path: {DATA / 'canonical.jsonl'}, format: canonical}}
  - {{path: {DATA / 'alpaca.json'}, format: alpaca}}
  - {{path: {DATA / 'chat_rounds.jsonl'}, format: chat_rounds}}
  - {{path: {DATA / 'prompt_completion.jsonl'}, format: prompt_completion, name: pc}}
  - {{path: extra.jsonl, format: canonical}}
steps: {{anonymise: true}}
near_dedup: {{threshold: 0.8}}
decontamination: {{benchmarks: [humaneval]}}
""")
    report = prepare(str(cfg), out=str(tmp_path / "out"))
    out = tmp_path / "out"

    steps = {s["step"]: s["total"] for s in report["steps"]}
    assert steps == {"read": 15, "syntax": 14, "normalise": 14, "anonymise": 14, "exact_dedup": 13,
                     "near_dedup": 12, "decontaminate": 11}
    assert report["totals"] == {"read": 18, "kept": 11, "rejected": 7}
    assert {k: v["count"] for k, v in report["rejected"].items()} == {
        "unknown language": 2, "malformed line": 1, "syntax error": 1, "exact duplicate": 1, "near duplicate": 1,
        "contaminated": 1}
    assert report["rejected"]["malformed line"]["examples"][0]["where"] == "extra.jsonl:6"
    removed = report["decontamination"]["removed"][0]
    assert removed["task_id"] == "HumanEval/3" and removed["overlap"] > 0.9  # matched before anonymisation
    assert report["anonymisation"]["renamed"] >= 3

    files = {p.name for p in out.glob("*.jsonl")}
    assert files == set(report["outputs"]) and "synthesis-python.jsonl" in files and "chat-rust.jsonl" in files
    assert sum(report["outputs"].values()) == 11
    for path in out.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert validate(row) is None and f"{row['task']}-{row['language']}.jsonl" == path.name
            assert 0 <= row["meta"]["prompt_variant"] < 5
    first = json.loads((out / "synthesis-python.jsonl").read_text().splitlines()[0])
    assert first["output"] == "def add(v0, v1):\n    v2 = v0 + v1\n    return v2\n"  # CRLF, spaces; locals renamed

    md = (out / "report.md").read_text()
    assert "| **total** | **15** | **14** | **14** | **14** | **13** | **12** | **11** |" in md
    assert "### unknown language: 2" in md and "prompt_completion.jsonl:2" in md
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["steps"] == report["steps"] and on_disk["created_by"]["config"]["steps"]["anonymise"] is True
    for name in ("fig3.png", "fig3a_languages.png", "fig3b_temperature.png", "fig3c_token_overlap.png",
                 "fig3d_curriculum.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


LONG = ("def histogram(values, bins):\n    counts = [0] * bins\n    lo, hi = min(values), max(values)\n"
        "    width = (hi - lo) / bins or 1\n    for v in values:\n        i = min(int((v - lo) / width), bins - 1)\n"
        "        counts[i] += 1\n    return counts\n")

BAD_LINES = {
    "malformed line": b'{"id": "x", "task": "synthesis",',
    "invalid UTF-8": json.dumps({**GOOD, "id": "x", "instruction": "caf\u00e9"}).encode().replace(b"\\u00e9", b"\xe9"),
    "missing field": json.dumps({k: v for k, v in GOOD.items() if k != "output"}).encode(),
    "unknown language": json.dumps({**GOOD, "language": "fortran"}).encode(),
    "empty output": json.dumps({**GOOD, "output": ""}).encode(),
}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_bad_input(tmp_path, reason, strict):
    lines = [json.dumps({**GOOD, "id": "before"}).encode(), BAD_LINES[reason],
             json.dumps({**GOOD, "id": "after", "output": "def two():\n    return 2\n"}).encode()]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cfg = write_config(tmp_path, "sources: [{path: bad.jsonl}]\nfigures: false\nsteps: {decontaminate: false}\n")
    if strict:
        with pytest.raises(PrepareError, match=rf"^bad\.jsonl:2: {reason}: "):
            prepare(str(cfg), out=str(tmp_path / "out"), strict=True)
        assert not (tmp_path / "out").exists()
        return
    report = prepare(str(cfg), out=str(tmp_path / "out"))
    assert report["rejected"][reason]["count"] == 1
    assert report["rejected"][reason]["examples"][0]["where"] == "bad.jsonl:2"
    kept = [json.loads(x)["id"] for x in (tmp_path / "out" / "synthesis-python.jsonl").read_text().splitlines()]
    assert kept == ["before", "after"]  # the line after the bad one is not lost


def test_prepare_error_is_a_value_error():
    assert issubclass(PrepareError, ValueError)


def test_rerun_removes_stale_task_files(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({**GOOD, "language": "python"}) + "\n")
    cfg = write_config(tmp_path, "sources: [{path: a.jsonl}]\nfigures: false\nsteps: {decontaminate: false}\n")
    prepare(str(cfg), out=str(tmp_path / "out"))
    (tmp_path / "a.jsonl").write_text(json.dumps({**GOOD, "task": "repair"}) + "\n")
    report = prepare(str(cfg), out=str(tmp_path / "out"))
    files = sorted(p.name for p in (tmp_path / "out").glob("*.jsonl"))
    assert files == ["repair-python.jsonl"] == list(report["outputs"])


@pytest.mark.parametrize("body,message", [
    ("sources: [{path: a.jsonl, formt: alpaca}]\n", "sources[0].formt: unknown key"),
    ("sources: [{format: alpaca}]\n", "a 'alpaca' source needs a path"),
    ("sources: [{path: a.jsonl, language: cobol}]\n", "unknown language 'cobol'"),
    ("sources: [{format: mbpp}]\nnear_dedup: {threshold: 1.5}\n", "near_dedup.threshold must be in (0, 1]"),
    ("sources: [{format: mbpp}]\ndecontamination: {benchmarks: [nope]}\n", "unknown ['nope']"),
])
def test_config_errors(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        prepare(str(write_config(tmp_path, body)), out=str(tmp_path / "out"))


def test_synthetic_source_is_not_matched_against_its_own_held_out_splits(tmp_path):
    pytest.importorskip("mftcoder_pp.synthetic")
    from mftcoder_pp.benchmarks import REGISTRY

    benches = [b for b in ("synthetic-python", "synthetic-transfer") if b in REGISTRY] + ["humaneval"]
    cfg = write_config(tmp_path, f"sources: [{{format: synthetic, split: sft, limit: 200}}]\nfigures: false\n"
                                 f"decontamination: {{benchmarks: {benches}}}\n")
    report = prepare(str(cfg), out=str(tmp_path / "out"))
    assert report["steps"][0]["total"] == 200
    assert "contaminated" not in report["rejected"]
    assert report["decontamination"]["not_matched"].get("synthetic-sft", []) == [b for b in benches if b != "humaneval"]


def test_shipped_configs_load():
    configs = sorted((ROOT / "configs" / "prepare").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path, PrepareConfig)


def test_demo_config_runs(tmp_path):
    path = ROOT / "configs" / "prepare" / "demo.yaml"
    cfg = dataclasses.replace(load_config(path, PrepareConfig), figures=False)
    report = run_prepare(cfg, out=str(tmp_path / "demo"), base_dir=path.parent, config_path=str(path))
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["mbpp-train"]["read"] == 374 and sources["oasst"]["read"] == 151
    assert sources["oasst"]["rejected_on_read"] > 0  # general chat without code: "unknown language"
    # MBPP in its own task (whole programs), the synthetic SFT pool's python in synthesis/python
    assert report["outputs"]["program-python.jsonl"] > 300 and report["outputs"]["synthesis-python.jsonl"] > 150
    assert report["rejected"]["contaminated"]["count"] > 0  # MBPP's train split repeats some test problems
    assert len(report["decontamination"]["benchmarks"]) > 10  # every registered benchmark


def test_a_byte_order_mark_loses_no_record(tmp_path):
    """Files exported on Windows start with a UTF-8 BOM; the first record must not become a bad line."""
    rows = [{**GOOD, "id": "first"}, {**GOOD, "id": "second", "output": "def two():\n    return 2\n"}]
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    cfg = write_config(tmp_path, "\ufeffsources: [{path: bom.jsonl}]\nfigures: false\nsteps: {decontaminate: false}\n")
    report = prepare(str(cfg.resolve()), out=str(tmp_path / "out"), strict=True)
    assert report["totals"] == {"read": 2, "kept": 2, "rejected": 0}


@pytest.mark.parametrize("path,message", [
    ("data/foo.jsonl", "sources[1].path: no such file: data/foo.jsonl"),
    (".", "sources[1].path: . is a directory, not a file"),
    ("empty.jsonl", "sources[1].path: empty.jsonl: holds no rows"),
    ("package:data/nope.jsonl", "sources[1].path: no such file in the mftcoder_pp package: package:data/nope.jsonl"),
])
def test_a_source_that_cannot_be_read_names_the_config_key(tmp_path, path, message):
    (tmp_path / "a.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    cfg = write_config(tmp_path, f"sources: [{{path: a.jsonl}}, {{path: '{path}'}}]\nfigures: false\n")
    with pytest.raises(ConfigError) as err:
        prepare(str(cfg), out=str(tmp_path / "out"))
    assert str(err.value).startswith(f"{cfg}: {message}")
    if path != "empty.jsonl":  # found before anything is read or written
        assert not (tmp_path / "out").exists()
