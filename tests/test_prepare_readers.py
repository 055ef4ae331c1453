"""Readers: every schema and container gives canonical records; bad lines are problems with file:line
and never take their neighbours with them."""

import gzip
import json
from pathlib import Path

import pytest

from mftcoder_pp.data.langdetect import detect_language
from mftcoder_pp.data.readers import Problem, read_source
from mftcoder_pp.data.records import Record
from mftcoder_pp.prepare.sources import MBPP, MBPP_SPLITS, packaged_mbpp

DATA = Path(__file__).parent / "data" / "prepare"


def split(items):
    items = list(items)
    records = [x for x in items if isinstance(x, Record)]
    problems = [x for x in items if isinstance(x, Problem)]
    return records, problems


def test_canonical_jsonl():
    records, problems = split(read_source(DATA / "canonical.jsonl", "canonical", name="canon"))
    assert not problems
    assert [r.id for r in records] == ["c1", "c2", "c3"]
    assert [(r.task, r.language) for r in records] == [("synthesis", "python"), ("completion", "go"),
                                                       ("synthesis", "rust")]
    assert records[0].tests == "assert add(1, 2) == 3" and records[0].entry_point == "add"
    assert records[0].source.endswith("canonical.jsonl:1") and records[0].meta["source"] == "canon"


def test_alpaca_json_array_detects_languages():
    records, problems = split(read_source(DATA / "alpaca.json", "alpaca", name="alp"))
    assert not problems
    assert [r.language for r in records] == ["javascript", "java", "cpp"]  # detected, given, detected
    assert all(r.task == "synthesis" and r.input == "" for r in records)
    assert [r.source.rsplit(":", 1)[1] for r in records] == ["2", "7", "13"]  # the line each row starts on
    assert records[0].id == "alp/2"


def test_chat_rounds():
    records, problems = split(read_source(DATA / "chat_rounds.jsonl", "chat_rounds", name="chat"))
    assert not problems
    first = records[0]
    assert first.task == "chat" and first.language == "python"
    assert first.instruction.startswith("You are a helpful coding assistant.\n\nShow me one in Python")
    assert first.input == "Human: What is a list comprehension?\n\nBot: A compact way to build a list."
    assert first.output.startswith("```python\nsquares")
    assert records[1].language == "rust" and records[1].input == ""


def test_chat_rounds_without_bot_turn_is_a_problem(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"chat_rounds": [{"role": "human", "content": "hi"}]}) + "\n")
    _, problems = split(read_source(path, "chat_rounds", name="c"))
    assert problems[0].reason == "invalid record" and "no bot turn" in problems[0].detail


def test_prompt_completion_languages_and_unknown():
    records, problems = split(read_source(DATA / "prompt_completion.jsonl", "prompt_completion", name="pc"))
    assert [(r.id, r.language) for r in records] == [("pc/1", "go"), ("pc/4", "python")]  # fence tag; untagged fence
    assert [(p.where.rsplit(":", 1)[1], p.reason) for p in problems] == [("2", "unknown language"),
                                                                          ("3", "unknown language")]


def test_field_mapping_and_fixed_language(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "Double x.", "answer": "def f(x):\n    return 2 * x\n"}) + "\n")
    records, _ = split(read_source(path, "alpaca", name="qa", fields={"instruction": "question", "output": "answer"},
                                   language="py", task="repair"))
    assert records[0].instruction == "Double x." and records[0].language == "python" and records[0].task == "repair"


@pytest.mark.parametrize("split_name", ["train", "validation"])
def test_mbpp_splits(split_name):
    records, problems = split(read_source(packaged_mbpp(), MBPP, name=f"mbpp-{split_name}", split=split_name))
    assert not problems
    ids = [r.meta["mbpp_task_id"] for r in records]
    assert ids == list(MBPP_SPLITS[split_name])
    r = records[0]
    assert r.language == "python" and r.task == "program" and r.entry_point
    assert r.input.startswith("assert ") and f"def {r.entry_point}" in r.output
    assert "def mbpp_check__(candidate):" in r.tests  # the evaluation harness's own form


def test_gzipped_jsonl_and_parquet(tmp_path):
    rows = [json.loads(line) for line in (DATA / "canonical.jsonl").read_text().splitlines()]
    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert [r.id for r in split(read_source(gz, "canonical", name="gz"))[0]] == ["c1", "c2", "c3"]

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    records, problems = split(read_source(tmp_path / "rows.parquet", "canonical", name="pq"))
    assert not problems and [r.id for r in records] == ["c1", "c2", "c3"]
    assert records[2].source.endswith("rows.parquet:3")


GOOD = {"id": "ok", "task": "synthesis", "language": "python", "instruction": "i", "input": "", "output": "x = 1\n"}


@pytest.mark.parametrize("line,reason", [
    (b'{"id": "broken", "task": ', "malformed line"),
    (json.dumps({**GOOD, "output": "s = 'caf\xe9'\n"}).encode().replace(b"\\u00e9", b"\xe9"), "invalid UTF-8"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "instruction"}).encode(), "missing field"),
    (json.dumps({**GOOD, "language": "cobol"}).encode(), "unknown language"),
    (json.dumps({**GOOD, "output": "  \n"}).encode(), "empty output"),
])
def test_bad_line_costs_only_itself(tmp_path, line, reason):
    path = tmp_path / "mixed.jsonl"
    rows = [json.dumps({**GOOD, "id": "a"}).encode(), line, json.dumps({**GOOD, "id": "b"}).encode()]
    path.write_bytes(b"\n".join(rows) + b"\n")
    records, problems = split(read_source(path, "canonical", name="m"))
    assert [r.id for r in records] == ["a", "b"]
    assert len(problems) == 1 and problems[0].reason == reason
    assert problems[0].where == f"{path}:2"


def test_invalid_utf8_inside_a_json_array_costs_one_row(tmp_path):
    path = tmp_path / "rows.json"
    rows = [{"instruction": "i", "output": f"x = {i}\n", "language": "python"} for i in range(3)]
    text = json.dumps(rows, indent=1).encode().replace(b"x = 1", b"x = \xff1")
    path.write_bytes(text)
    records, problems = split(read_source(path, "alpaca", name="arr"))
    assert [r.output for r in records] == ["x = 0\n", "x = 2\n"]
    assert problems[0].reason == "invalid UTF-8" and problems[0].where.startswith(f"{path}:")


def test_detect_language():
    assert detect_language("```c++\nint x = 0;\n```") == "cpp"
    assert detect_language("```js\nlet a = 1;\n```\n```python\nx = [1, 2, 3]\nprint(x)\n```") == "python"  # more code
    assert detect_language("fn main() {\n    let mut v = vec![1];\n    println!(\"{:?}\", v);\n}\n") == "rust"
    assert detect_language("package main\n\nimport \"fmt\"\n\nfunc main() {\n\tx := 1\n\tfmt.Println(x)\n}\n") == "go"
    assert detect_language("The capital of France is Paris. It is a lovely city.") is None
    assert detect_language("```bash\nls -la\n```") is None


BOM = b"\xef\xbb\xbf"
ALPACA = {"instruction": "Double x.", "output": "def f(x):\n    return 2 * x\n", "language": "python"}
BOM_SOURCES = {  # (file name, format, content after the BOM)
    "canonical": ("rows.jsonl", "canonical", json.dumps({**GOOD, "id": "first"}) + "\n" + json.dumps(GOOD) + "\n"),
    "alpaca jsonl": ("rows.jsonl", "alpaca", json.dumps(ALPACA) + "\n"),
    "alpaca json array": ("rows.json", "alpaca", json.dumps([ALPACA, {**ALPACA, "output": "y = 2\n"}], indent=1)),
    "alpaca json object": ("row.json", "alpaca", json.dumps(ALPACA)),
    "chat_rounds": ("chat.jsonl", "chat_rounds", json.dumps({"chat_rounds": [
        {"role": "human", "content": "Double x in Python."}, {"role": "bot", "content": ALPACA["output"]}]}) + "\n"),
    "prompt_completion": ("pc.jsonl", "prompt_completion",
                          json.dumps({"prompt": "Double x.", "completion": "```python\nx = 2\n```"}) + "\n"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", sorted(BOM_SOURCES))
def test_a_byte_order_mark_is_not_content(tmp_path, kind, gz):
    """Windows exports start with a UTF-8 BOM: every reader keeps the first row, line numbers unchanged."""
    name, fmt, text = BOM_SOURCES[kind]
    data = BOM + text.encode()
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    records, problems = split(read_source(path, fmt, name="b"))
    expected, _ = split(read_source(_write(tmp_path / ("plain-" + name), text.encode()), fmt, name="b"))
    assert not problems and len(records) == len(expected) >= 1
    assert [r.source.rsplit(":", 1)[1] for r in records] == [r.source.rsplit(":", 1)[1] for r in expected]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_byte_order_mark_inside_concatenated_jsonl(tmp_path):
    part = BOM + (json.dumps(GOOD) + "\n").encode()
    path = _write(tmp_path / "cat.jsonl", part + part.replace(b'"ok"', b'"ok2"'))
    records, problems = split(read_source(path, "canonical", name="c"))
    assert not problems and [r.id for r in records] == ["ok", "ok2"]


def test_prepared_files_with_a_byte_order_mark(tmp_path):
    from mftcoder_pp.data.records import read_prepared

    _write(tmp_path / "synthesis-python.jsonl", BOM + (json.dumps(GOOD) + "\n").encode())
    assert read_prepared([str(tmp_path)]) == [GOOD]


@pytest.mark.parametrize("name,data,message", [
    ("u16.jsonl", ("\ufeff" + json.dumps(GOOD)).encode("utf-16-le"), "UTF-16 text"),
    ("u16.json", ("\ufeff" + json.dumps(GOOD)).encode("utf-16-le"), "UTF-16 text"),
    ("x.parquet", b"not parquet", "not a readable Parquet file"),
], ids=["utf-16 jsonl", "utf-16 json", "not parquet"])
def test_a_file_that_cannot_be_read_at_all_is_one_error(tmp_path, name, data, message):
    from mftcoder_pp.data.readers import SourceError

    path = _write(tmp_path / name, data)
    with pytest.raises(SourceError, match=message):
        list(read_source(path, "canonical", name="x"))


def test_a_truncated_gzip_keeps_the_rows_before_the_damage(tmp_path):
    whole = gzip.compress("".join(json.dumps({**GOOD, "id": f"r{i}"}) + "\n" for i in range(200)).encode())
    path = _write(tmp_path / "cut.jsonl.gz", whole[: len(whole) // 2])
    records, problems = split(read_source(path, "canonical", name="g"))
    assert records and [p.reason for p in problems] == ["unreadable file"]
    assert "truncated" in problems[0].detail and problems[0].where == str(path)
