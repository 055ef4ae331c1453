"""Bad input to every `mftpp` command ends in one clear line naming the file, key or flag, exit code 2,
and no traceback — and it is found before any data or model loads, which keeps this whole table fast.

Each case is (command, what is wrong, argv, config, needles): `config` (a dict, written as JSON, which
is YAML, or raw text) goes to `<c>`; placeholders in argv, config and needles are replaced by the
paths of the workspace below. The tests run as root, where `chmod 000` does not stop a read, so an
"unreadable" file is one of: a path through a regular file (ENOTDIR), a dangling symlink, a Unix
socket (open() fails with ENXIO even for root), or binary garbage (invalid UTF-8). FIFOs are not used:
reading one legitimately waits for a writer (`<(...)` process substitution is one).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mftcoder_pp.cli import main

GOOD_ROW = {"id": "a", "task": "synthesis", "language": "python", "instruction": "Return one.", "input": "",
            "output": "def one():\n    return 1\n"}
GARBAGE = bytes(range(256)) * 4  # NUL, control characters and invalid UTF-8


@dataclass(frozen=True)
class Case:
    cmd: str
    what: str
    argv: list[str]
    needles: list[str]
    config: dict | str | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)  # extra files in the case directory (bytes: as is)

    @property
    def id(self) -> str:
        return f"{self.cmd}: {self.what}"


# ---- the workspace ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Paths every case may name; nothing here is a loadable model or real data on purpose."""
    root = tmp_path_factory.mktemp("ws")
    p = {"ws": str(root)}

    def put(name: str, content: str | bytes = "") -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            for key in ("prepared", "tok", "model"):  # the stage configs of an experiment name these
                content = content.replace(f"<{key}>", p.get(key, f"<{key}>"))
            content = content.encode()
        path.write_bytes(content)
        return str(path)

    p["file"] = put("file.txt", "hello\n")
    p["under_file"] = str(root / "file.txt" / "x")
    p["empty"] = put("empty.txt")
    p["garbage"] = put("garbage.bin", GARBAGE)
    p["dir"] = str(root / "emptydir")
    os.mkdir(p["dir"])
    p["dangling"] = str(root / "dangling")
    os.symlink(root / "no-such-target", p["dangling"])
    short = tempfile.mkdtemp(prefix="mftpp")  # AF_UNIX paths are limited to ~108 bytes
    p["socket"] = os.path.join(short, "s")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(p["socket"])
    p["prepared"] = str(Path(put("prepared/synthesis-python.jsonl", json.dumps(GOOD_ROW) + "\n")).parent)
    p["tok"] = str(Path(put("tok/tokenizer_config.json", "{}")).parent)
    p["cfg_only"] = str(Path(put("cfg_only/config.json", "{}")).parent)
    p["no_weights"] = str(Path(put("no_weights/config.json", "{}")).parent)
    put("no_weights/tokenizer_config.json", "{}")
    p["model"] = str(Path(put("model/config.json", "{}")).parent)  # looks complete; never loaded
    put("model/model.safetensors", b"not really weights")
    put("model/tokenizer_config.json", "{}")
    p["adapter"] = str(Path(put("adapter/adapter_config.json",
                                json.dumps({"base_model_name_or_path": str(root / "gone")}))).parent)
    p["samples"] = put("samples.jsonl", json.dumps({"task_id": "HumanEval/0", "completion": "    return 1\n"}) + "\n")
    # A shard whose run.json is fine but whose results hold a row that is not a result.
    run = {"benchmark": "humaneval", "samples": p["samples"], "samples_sha256": "x", "references": False,
           "num_shards": 1, "shard_index": 0}
    p["shard"] = str(Path(put("shard/run.json", json.dumps(run))).parent)
    p["bad_results"] = str(Path(put("bad_results/run.json", json.dumps(run))).parent)
    put("bad_results/results.jsonl", "[1, 2]\n")
    p["bad_run"] = str(Path(put("bad_run/run.json", "{not json")).parent)
    p["list_run"] = str(Path(put("list_run/run.json", "[]")).parent)
    # The stages an experiment names; their outputs look done, so a check that misses fails fast.
    put("stage_out/prepared/report.json", "{}")
    put("stage_out/tok/tokenizer_report.json", "{}")
    put("exp_prepare.yaml", json.dumps({"out": f"{root}/stage_out/prepared",
                                        "sources": [{"path": f"{p['prepared']}/synthesis-python.jsonl"}]}))
    put("exp_tok.yaml", json.dumps({"out": f"{root}/stage_out/tok", "data": [p["prepared"]]}))
    put("exp_pre.yaml", json.dumps(PRETRAIN))
    put("exp_sft.yaml", json.dumps(SFT))
    put("exp_list.yaml", "- 1\n- 2\n")
    put("exp_sft_typo.yaml", json.dumps({**SFT, "optim": {"max_stepz": 3}}))
    yield p
    sock.close()
    shutil.rmtree(short, ignore_errors=True)


PRETRAIN = {"out": "x", "stage": "pretrain", "data": {"prepared": ["<prepared>"]}, "model": {"tokenizer": "<tok>"},
            "adapter": {"kind": "full"}, "mixing": {"strategy": "plain"}, "optim": {"per_task": False}}
SFT = {"out": "y", "data": {"prepared": ["<prepared>"]}, "model": {"path": "<model>"}}
TRAIN = {"out": "<d>/run", "data": {"prepared": ["<prepared>"]}, "model": {"tokenizer": "<tok>"},
         "mixing": {"strategy": "plain"}, "optim": {"per_task": False, "max_steps": 1}}
PREPARE = {"out": "<d>/prepared", "sources": [{"path": "<prepared>/synthesis-python.jsonl"}]}
TOKENIZER = {"out": "<d>/tok", "data": ["<prepared>"]}
EXPERIMENT = {"out": "<d>/exp", "prepare": ["<ws>/exp_prepare.yaml"], "tokenizer": "<ws>/exp_tok.yaml",
              "pretrain": "<ws>/exp_pre.yaml", "sft": "<ws>/exp_sft.yaml", "seeds": [0],
              "rows": [{"name": "Base", "kind": "base"},
                       {"name": "Plain", "set": {"mixing.strategy": "plain", "optim.per_task": False}}],
              "evaluation": {"benchmarks": [{"name": "synthetic-python", "limit": 2}]}}


def with_(config: dict, **changes) -> dict:
    """`config` with top-level keys replaced (None removes one)."""
    out = {**config, **changes}
    return {k: v for k, v in out.items() if v is not None}


# ---- the table ----------------------------------------------------------------------------------

def config_file_cases(cmd: str, good: dict, wrong_type: tuple[dict, str], typo: tuple[dict, str]) -> list[Case]:
    """What can be wrong with the CONFIG argument of any config-driven command."""
    argv = [cmd, "<c>"]
    return [
        Case(cmd, "config missing", [cmd, "<d>/nope.yaml"], ["nope.yaml", "cannot read config"]),
        Case(cmd, "config is a directory", [cmd, "<dir>"], ["emptydir", "cannot read config"]),
        Case(cmd, "config is empty", [cmd, "<empty>"], ["empty.txt", "missing required key"]),
        Case(cmd, "config path through a file", [cmd, "<under_file>"], ["file.txt/x", "cannot read config"]),
        Case(cmd, "config is a dangling symlink", [cmd, "<dangling>"], ["dangling", "cannot read config"]),
        Case(cmd, "config is a socket", [cmd, "<socket>"], ["<socket>", "cannot read config"]),
        Case(cmd, "config is binary garbage", [cmd, "<garbage>"], ["garbage.bin", "not a UTF-8 text file"]),
        Case(cmd, "config is invalid YAML", argv, ["c.yaml:2", "invalid YAML"], config="a: 1\nb: c: d\n"),
        Case(cmd, "config is a list", argv, ["c.yaml", "top level: expected a mapping, got list"], config="- 1\n"),
        Case(cmd, "config is a list, with --out", [*argv, "--out", "<d>/o"], ["c.yaml", "expected a mapping"],
             config="- 1\n"),
        Case(cmd, "wrong type", argv, ["c.yaml", wrong_type[1]], config=wrong_type[0]),
        Case(cmd, "unknown key", argv, ["c.yaml", typo[1], "unknown key", "did you mean"], config=typo[0]),
        Case(cmd, "--out is a file", [*argv, "--out", "<file>"], ["--out", "file.txt", "not a directory"],
             config=good),
        Case(cmd, "--out under a file", [*argv, "--out", "<under_file>"], ["--out", "file.txt", "not a directory"],
             config=good),
    ]


PREPARE_CASES = config_file_cases(
    "prepare", PREPARE, (with_(PREPARE, temperature="hot"), "temperature: expected a number, got 'hot'"),
    (with_(PREPARE, sourcse=[]), "sourcse")) + [
    Case("prepare", "source missing", ["prepare", "<c>"], ["c.yaml: sources[1].path: no such file: data/foo.jsonl"],
         config=with_(PREPARE, sources=PREPARE["sources"] + [{"path": "data/foo.jsonl"}])),
    Case("prepare", "source is a directory", ["prepare", "<c>"], ["sources[0].path", "emptydir", "is a directory"],
         config=with_(PREPARE, sources=[{"path": "<dir>"}])),
    Case("prepare", "source is empty", ["prepare", "<c>"], ["sources[0].path", "empty.txt", "no rows"],
         config=with_(PREPARE, sources=[{"path": "<empty>"}])),
    Case("prepare", "source path through a file", ["prepare", "<c>"], ["sources[0].path", "file.txt/x"],
         config=with_(PREPARE, sources=[{"path": "<under_file>"}])),
    Case("prepare", "source is a dangling symlink", ["prepare", "<c>"], ["sources[0].path", "dangling"],
         config=with_(PREPARE, sources=[{"path": "<dangling>"}])),
    Case("prepare", "source is a socket", ["prepare", "<c>"], ["sources[0].path", "<socket>", "cannot read source"],
         config=with_(PREPARE, sources=[{"path": "<socket>"}])),
    Case("prepare", "source is binary garbage (strict)", ["prepare", "<c>", "--strict"], ["garbage.bin:1"],
         config=with_(PREPARE, sources=[{"path": "<garbage>"}])),
    Case("prepare", "source is a corrupt gzip (strict)", ["prepare", "<c>", "--strict"],
         ["bad.jsonl.gz", "corrupt or truncated gzip"], files={"bad.jsonl.gz": b"\x1f\x8bnot gzip at all"},
         config=with_(PREPARE, sources=[{"path": "bad.jsonl.gz"}])),
    Case("prepare", "source is not Parquet", ["prepare", "<c>"], ["sources[0].path", "x.parquet", "Parquet"],
         files={"x.parquet": "hello"}, config=with_(PREPARE, sources=[{"path": "x.parquet"}])),
    Case("prepare", "source is UTF-16", ["prepare", "<c>"], ["sources[0].path", "u16.jsonl", "UTF-16"],
         files={"u16.jsonl": ("\ufeff" + json.dumps(GOOD_ROW)).encode("utf-16-le")},
         config=with_(PREPARE, sources=[{"path": "u16.jsonl"}])),
    Case("prepare", "packaged source missing", ["prepare", "<c>"], ["sources[0].path", "package:data/nope.jsonl"],
         config=with_(PREPARE, sources=[{"path": "package:data/nope.jsonl"}])),
    Case("prepare", "unknown format", ["prepare", "<c>"], ["sources[0].format", "'csv'"],
         config=with_(PREPARE, sources=[{"path": "<prepared>/synthesis-python.jsonl", "format": "csv"}])),
    Case("prepare", "unknown language", ["prepare", "<c>"], ["sources[0]", "cobol"],
         config=with_(PREPARE, sources=[{"path": "<prepared>/synthesis-python.jsonl", "language": "cobol"}])),
    Case("prepare", "sources is a mapping", ["prepare", "<c>"], ["sources: expected a list"],
         config=with_(PREPARE, sources={"path": "x"})),
    Case("prepare", "decontamination benchmark typo", ["prepare", "<c>"], ["decontamination", "humaneva'"],
         config=with_(PREPARE, decontamination={"benchmarks": ["humaneva"]})),
    Case("prepare", "config out is a file", ["prepare", "<c>"], ["c.yaml: out", "file.txt", "not a directory"],
         config=with_(PREPARE, out="<file>")),
]

TOKENIZER_CASES = config_file_cases(
    "tokenizer", TOKENIZER, (with_(TOKENIZER, vocab_size_per_language="many"), "vocab_size_per_language: expected"),
    (with_(TOKENIZER, min_frequncy=3), "min_frequncy")) + [
    Case("tokenizer", "data missing", ["tokenizer", "<c>"], ["c.yaml: data[0]", "nope", "mftpp prepare"],
         config=with_(TOKENIZER, data=["<d>/nope"])),
    Case("tokenizer", "data dir without JSONL", ["tokenizer", "<c>"], ["emptydir", "no .jsonl files"],
         config=with_(TOKENIZER, data=["<dir>"])),
    Case("tokenizer", "data file is binary garbage", ["tokenizer", "<c>"], ["garbage.bin", "not valid UTF-8"],
         config=with_(TOKENIZER, data=["<garbage>"])),
    Case("tokenizer", "pretrained base missing", ["tokenizer", "<c>"], ["c.yaml: base", "nope", "cannot load"],
         config=with_(TOKENIZER, mode="pretrained", base="<d>/nope", data=None)),
    Case("tokenizer", "pretrained base is an empty dir", ["tokenizer", "<c>"], ["c.yaml: base", "emptydir"],
         config=with_(TOKENIZER, mode="pretrained", base="<dir>", data=None)),
    Case("tokenizer", "unknown language", ["tokenizer", "<c>"], ["c.yaml", "languages", "cobol"],
         config=with_(TOKENIZER, languages=["python", "cobol"])),
]

TRAIN_CASES = config_file_cases(
    "train", TRAIN, (with_(TRAIN, optim={"lr": "fast"}), "optim.lr: expected a number, got 'fast'"),
    (with_(TRAIN, optim={"max_stepz": 3}), "optim.max_stepz")) + [
    Case("train", "prepared data missing", ["train", "<c>"], ["c.yaml: data.prepared[0]", "nope"],
         config=with_(TRAIN, data={"prepared": ["<d>/nope"]})),
    Case("train", "tokenizer missing", ["train", "<c>"], ["c.yaml: model.tokenizer", "nope", "does not exist"],
         config=with_(TRAIN, model={"tokenizer": "<d>/nope"})),
    Case("train", "tokenizer is an empty dir", ["train", "<c>"], ["c.yaml: model.tokenizer", "emptydir"],
         config=with_(TRAIN, model={"tokenizer": "<dir>"})),
    Case("train", "model missing", ["train", "<c>"], ["c.yaml: model.path", "nope", "does not exist"],
         config=with_(TRAIN, model={"path": "<d>/nope"})),
    Case("train", "model is a file", ["train", "<c>"], ["c.yaml: model.path", "file.txt"],
         config=with_(TRAIN, model={"path": "<file>"})),
    Case("train", "model dir with config.json only", ["train", "<c>"], ["c.yaml: model.path", "cfg_only"],
         config=with_(TRAIN, model={"path": "<cfg_only>"})),
    Case("train", "model dir without weights", ["train", "<c>"], ["c.yaml: model.path", "no model weights"],
         config=with_(TRAIN, model={"path": "<no_weights>"})),
    Case("train", "model dir empty", ["train", "<c>"], ["c.yaml: model.path", "emptydir"],
         config=with_(TRAIN, model={"path": "<dir>"})),
    Case("train", "early-stopping benchmark typo", ["train", "<c>"], ["early_stopping.benchmark", "synthetic-pyton"],
         config=with_(TRAIN, early_stopping={"every": 5, "benchmark": "synthetic-pyton"})),
    Case("train", "optim is a number", ["train", "<c>"], ["c.yaml: optim: expected a mapping"],
         config=with_(TRAIN, optim=5)),
]

GEN = ["generate", "--model", "<model>", "--benchmark", "synthetic-python", "--out", "<d>/gen"]
GENERATE_CASES = [
    Case("generate", "model missing", [*GEN, "--model", "<d>/nope"], ["--model", "nope", "does not exist"]),
    Case("generate", "model is a file", [*GEN, "--model", "<file>"], ["--model", "file.txt"]),
    Case("generate", "model path through a file", [*GEN, "--model", "<under_file>"], ["--model", "file.txt/x"]),
    Case("generate", "model dir empty", [*GEN, "--model", "<dir>"], ["--model", "emptydir", "no config.json"]),
    Case("generate", "model dir with config.json only", [*GEN, "--model", "<cfg_only>"],
         ["--model", "cfg_only", "no model weights"]),
    Case("generate", "adapter whose base is gone", [*GEN, "--model", "<adapter>"],
         ["adapter_config.json", "is not a local model directory"]),
    Case("generate", "benchmark typo", [*GEN, "--benchmark", "synthetic-pyton"], ["--benchmark", "synthetic-pyton"]),
    Case("generate", "--n 0", [*GEN, "--n", "0"], ["--n must be >= 1"]),
    Case("generate", "--n not a number", [*GEN, "--n", "three"], ["argument --n", "'three'"]),
    Case("generate", "--temperature -1", [*GEN, "--temperature", "-1"], ["--temperature must be >= 0"]),
    Case("generate", "--top-p 1.5", [*GEN, "--top-p", "1.5"], ["--top-p must be in (0, 1]"]),
    Case("generate", "--max-new-tokens 0", [*GEN, "--max-new-tokens", "0"], ["--max-new-tokens must be >= 1"]),
    Case("generate", "--batch-size 0", [*GEN, "--batch-size", "0"], ["--batch-size must be >= 1"]),
    Case("generate", "--limit 0", [*GEN, "--limit", "0"], ["--limit must be >= 1"]),
    Case("generate", "--num-shards 2 --shard-index 5", [*GEN, "--num-shards", "2", "--shard-index", "5"],
         ["--shard-index must be in [0, 2)"]),
    Case("generate", "--dtype typo", [*GEN, "--dtype", "float8"], ["argument --dtype", "'float8'"]),
    Case("generate", "--out is a file", [*GEN, "--out", "<file>"], ["--out", "file.txt", "not a directory"]),
]

EV = ["evaluate", "--benchmark", "humaneval", "--samples", "<samples>", "--out", "<d>/ev"]
EVALUATE_CASES = [
    Case("evaluate", "samples missing", [*EV, "--samples", "<d>/nope.jsonl"], ["nope.jsonl", "cannot read"]),
    Case("evaluate", "samples is a directory", [*EV, "--samples", "<dir>"], ["emptydir", "cannot read"]),
    Case("evaluate", "samples empty", [*EV, "--samples", "<empty>"], ["empty.txt: no samples"]),
    Case("evaluate", "samples binary garbage", [*EV, "--samples", "<garbage>"], ["garbage.bin", "not valid UTF-8"]),
    Case("evaluate", "samples path through a file", [*EV, "--samples", "<under_file>"], ["file.txt/x", "cannot read"]),
    Case("evaluate", "samples dangling symlink", [*EV, "--samples", "<dangling>"], ["dangling", "cannot read"]),
    Case("evaluate", "samples a socket", [*EV, "--samples", "<socket>"], ["<socket>", "cannot read"]),
    Case("evaluate", "samples line is a list", [*EV, "--samples", "<d>/s.jsonl"], ["s.jsonl:1", "JSON object"],
         files={"s.jsonl": "[1]\n"}),
    Case("evaluate", "samples line misses a key", [*EV, "--samples", "<d>/s.jsonl"], ["s.jsonl:1", "'completion'"],
         files={"s.jsonl": '{"task_id": "HumanEval/0"}\n'}),
    Case("evaluate", "benchmark typo", [*EV, "--benchmark", "humaneva"], ["argument --benchmark", "'humaneva'"]),
    Case("evaluate", "--workers 0", [*EV, "--workers", "0"], ["--workers must be >= 1"]),
    Case("evaluate", "--workers -2", [*EV, "--workers", "-2"], ["--workers must be >= 1"]),
    Case("evaluate", "--num-shards 2 --shard-index 5", [*EV, "--num-shards", "2", "--shard-index", "5"],
         ["--shard-index must be in [0, 2)"]),
    Case("evaluate", "--num-shards 0", [*EV, "--num-shards", "0"], ["--num-shards must be >= 1"]),
    Case("evaluate", "--k 0", [*EV, "--k", "0"], ["--k values must be >= 1"]),
    Case("evaluate", "--timeout 0", [*EV, "--timeout", "0"], ["--timeout must be > 0"]),
    Case("evaluate", "--memory-mb 0", [*EV, "--memory-mb", "0"], ["--memory-mb must be >= 1"]),
    Case("evaluate", "--python missing", [*EV, "--python", "<d>/nope-python"], ["--python", "nope-python"]),
    Case("evaluate", "--out is a file", [*EV, "--out", "<file>"], ["--out", "file.txt", "not a directory"]),
]

MG = ["merge", "--out", "<d>/merged"]
MERGE_CASES = [
    Case("merge", "shard missing", [*MG, "<d>/nope"], ["nope", "no such directory"]),
    Case("merge", "shard is a file", [*MG, "<file>"], ["file.txt", "not an evaluation output directory"]),
    Case("merge", "shard dir empty", [*MG, "<dir>"], ["emptydir/run.json", "cannot read"]),
    Case("merge", "run.json invalid JSON", [*MG, "<bad_run>"], ["bad_run/run.json", "not a valid"]),
    Case("merge", "run.json a list", [*MG, "<list_run>"], ["list_run/run.json", "JSON object"]),
    Case("merge", "results row is a list", [*MG, "<bad_results>"], ["results.jsonl:1", "expected a JSON object"]),
    Case("merge", "--k not numbers", [*MG, "<shard>", "--k", "1,x"], ["--k must be comma-separated integers"]),
    Case("merge", "--out is a file", ["merge", "--out", "<file>", "<shard>"], ["--out", "file.txt"]),
]

EXPERIMENT_CASES = config_file_cases(
    "experiment", EXPERIMENT, (with_(EXPERIMENT, seeds="0,1"), "seeds: expected a list"),
    (with_(EXPERIMENT, titel="x"), "titel")) + [
    Case("experiment", "benchmark typo", ["experiment", "<c>"], ["evaluation.benchmarks[0]", "synthetic-pyton"],
         config=with_(EXPERIMENT, evaluation={"benchmarks": [{"name": "synthetic-pyton"}]})),
    Case("experiment", "pilot benchmark typo", ["experiment", "<c>"], ["pilot 'p'", "benchmark", "synthetic-dve"],
         config=with_(EXPERIMENT, pilots=[{"name": "p", "row": "Plain", "benchmark": "synthetic-dve",
                                           "grid": {"optim.lr": [1e-3]}}])),
    Case("experiment", "prepare config missing", ["experiment", "<c>"], ["c.yaml: prepare[0]", "nope.yaml"],
         config=with_(EXPERIMENT, prepare=["<d>/nope.yaml"])),
    Case("experiment", "tokenizer config missing", ["experiment", "<c>"], ["c.yaml: tokenizer", "nope.yaml"],
         config=with_(EXPERIMENT, tokenizer="<d>/nope.yaml")),
    Case("experiment", "pretrain config is a list", ["experiment", "<c>"], ["c.yaml: pretrain", "exp_list.yaml"],
         config=with_(EXPERIMENT, pretrain="<ws>/exp_list.yaml")),
    Case("experiment", "sft config has a typo", ["experiment", "<c>"], ["rows[1].set", "optim.max_stepz"],
         config=with_(EXPERIMENT, sft="<ws>/exp_sft_typo.yaml")),
    Case("experiment", "row sets an unknown key", ["experiment", "<c>"],
         ["rows[0].set", "modules.dag", "did you mean 'dagg'"],
         config=with_(EXPERIMENT, rows=[{"name": "Plain", "set": {"mixing.strategy": "plain", "optim.per_task": False,
                                                                  "modules.dag.enabled": True}}])),
    Case("experiment", "row sets below a number", ["experiment", "<c>"], ["rows[0].set", "optim.lr.x"],
         config=with_(EXPERIMENT, rows=[{"name": "Plain", "set": {"optim.lr": 1, "optim.lr.x": 2}}])),
    Case("experiment", "pilot grid key typo", ["experiment", "<c>"], ["pilots[0].grid", "optim.lrr"],
         config=with_(EXPERIMENT, pilots=[{"name": "p", "row": "Plain", "benchmark": "synthetic-python",
                                           "grid": {"optim.lrr": [1e-3]}}])),
]

DEMO_CASES = [
    Case("demo", "--out is a file", ["demo", "--quick", "--out", "<file>"], ["--out", "file.txt", "not a directory"]),
    Case("demo", "--out under a file", ["demo", "--quick", "--out", "<under_file>"], ["--out", "file.txt"]),
]

CASES = (PREPARE_CASES + TOKENIZER_CASES + TRAIN_CASES + GENERATE_CASES + EVALUATE_CASES + MERGE_CASES
         + EXPERIMENT_CASES + DEMO_CASES)
# Through a real process: nothing but the one line reaches stderr.
SUBPROCESS = ["prepare: source missing", "generate: model dir with config.json only",
              "evaluate: samples binary garbage", "merge: shard missing", "tokenizer: data missing",
              "demo: --out is a file", "experiment: benchmark typo"]


def materialise(case: Case, ws: dict, tmp_path: Path) -> tuple[list[str], list[str]]:
    """The case's argv and needles with every placeholder replaced; its files written."""
    subs = {**ws, "d": str(tmp_path), "c": str(tmp_path / "c.yaml")}

    def fill(text: str) -> str:
        for key, value in sorted(subs.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"<{key}>", value)
        return text

    if case.config is not None:
        raw = case.config if isinstance(case.config, str) else json.dumps(case.config)
        (tmp_path / "c.yaml").write_text(fill(raw))
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else fill(content).encode())
    return [fill(a) for a in case.argv], [fill(n) for n in case.needles]


def check(case: Case, rc: int, out: str, err: str, needles: list[str]) -> None:
    assert rc == 2, f"exit {rc}; stderr: {err}"
    assert "Traceback" not in out + err
    assert out == "", "an error prints nothing on stdout"
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"mftpp {case.cmd}: error: "), err
    for needle in needles:
        assert needle in last, f"{needle!r} not in: {last}"


def test_the_table_is_big_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.cmd for c in CASES} == {"prepare", "tokenizer", "train", "generate", "evaluate", "merge", "experiment",
                                      "demo"}
    assert set(SUBPROCESS) <= {c.id for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, ws, tmp_path, capsys):
    argv, needles = materialise(case, ws, tmp_path)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: its own message, exit code 2
        rc = exc.code
    captured = capsys.readouterr()
    check(case, rc, captured.out, captured.err, needles)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=SUBPROCESS)
def test_no_traceback_reaches_stderr_of_a_real_process(case, ws, tmp_path):
    argv, needles = materialise(case, ws, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "mftcoder_pp.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    check(case, proc.returncode, proc.stdout, proc.stderr, needles)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_defaults_are_the_library_defaults():
    """One place for a default: the command line passes what generate()/evaluate() would use anyway."""
    import inspect

    from mftcoder_pp.cli import build_parser
    from mftcoder_pp.evaluate import evaluate
    from mftcoder_pp.generate import generate

    parser = build_parser()
    for fn, argv in ((generate, ["generate", "--model", "m", "--benchmark", "humaneval", "--out", "o"]),
                     (evaluate, ["evaluate", "--benchmark", "humaneval", "--references", "--out", "o"])):
        args = vars(parser.parse_args(argv))
        params = inspect.signature(fn).parameters
        shared = [name for name in args if name in params and params[name].default is not inspect.Parameter.empty
                  and "--" + name.replace("_", "-") not in argv]
        assert len(shared) >= 8
        for name in shared:
            assert args[name] == params[name].default, (fn.__name__, name)
