"""The provenance record every artifact carries, the atomic JSON writer, and the one JSONL reader's
handling of a write cut short by a kill (only the last line may be torn)."""

import json

import pytest

from mftcoder_pp import __version__
from mftcoder_pp.data.records import json_objects
from mftcoder_pp.provenance import provenance, write_json


def test_provenance_names_version_commit_libraries_and_extras():
    record = provenance(seed=3, config_path="x.yaml")
    assert record["mftcoder_pp"] == __version__
    assert record["seed"] == 3 and record["config_path"] == "x.yaml"
    assert set(record["libraries"]) >= {"torch", "transformers", "peft"}
    assert record["commit"] is None or len(record["commit"]) == 40  # a checkout, or an installed copy
    assert record["dirty"] in (None, True, False)


def test_write_json_replaces_whole_files(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_torn_last_line_is_skipped_only_where_allowed(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert [r["a"] for _, r in json_objects(path, ValueError, torn_tail=True)] == [1, 2]
    with pytest.raises(ValueError, match=r"rows.jsonl:3: invalid JSON"):
        list(json_objects(path, ValueError))
    # A broken line that is not the last one is damage, not a torn write: always an error.
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: invalid JSON"):
        list(json_objects(path, ValueError, torn_tail=True))


def test_a_torn_multibyte_character_in_the_last_line_is_a_torn_write(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes('{"a": "é"}\n{"a": "é'.encode()[:-1])
    assert [r["a"] for _, r in json_objects(path, ValueError, torn_tail=True)] == ["é"]
    with pytest.raises(ValueError, match="not valid UTF-8"):
        list(json_objects(path, ValueError))
