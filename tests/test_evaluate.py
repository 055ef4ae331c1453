"""`mftpp evaluate` / `mftpp merge`: the file contract, bad input, resume and sharding."""

import json

import pytest

from mftcoder_pp.benchmarks import get_benchmark
from mftcoder_pp.cli import main
from mftcoder_pp.evaluate import evaluate, merge, read_results

pytestmark = pytest.mark.sandbox

HE = {t.task_id: t for t in get_benchmark("humaneval").tasks()}
IDS = ["HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3"]


def write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def samples(tmp_path):
    rows = []
    for tid in IDS:
        rows.append({"task_id": tid, "completion": HE[tid].reference})
        rows.append({"task_id": tid, "completion": "    return None\n"})
    return write_samples(tmp_path / "samples.jsonl", rows)


def test_results_and_summary(tmp_path, samples):
    summary = evaluate("humaneval", str(tmp_path / "out"), samples=samples, k=(1, 2, 10), workers=2, progress=False)
    rows = read_results(tmp_path / "out" / "results.jsonl")
    assert len(rows) == 8
    for r in rows:
        assert {"task_id", "completion_id", "status", "passed", "tests_passed", "tests_total", "compile_seconds",
                "run_seconds", "stdout", "stderr"} <= set(r)
        assert r["passed"] == (r["completion_id"] == 0)
    assert summary["complete"] and summary["num_tasks"] == 4 and summary["num_samples"] == 8
    assert summary["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0}  # no pass@10: only 2 samples per task
    assert summary["fpr"] == 0.5 and summary["rsr"] == 1.0
    assert summary["status_counts"] == {"passed": 4, "failed": 4}
    assert summary["exact_match"] == 0.5
    assert 0 < summary["bleu"] < 1 and 0 < summary["codebleu"]["codebleu"] < 1
    assert summary["settings"]["isolation"] in ("bwrap", "none")
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["pass@k"] == summary["pass@k"]


def test_no_codebleu_gives_the_same_verdicts_without_it(tmp_path, samples, monkeypatch, capsys):
    import mftcoder_pp.evaluate as ev

    monkeypatch.setattr(ev, "codebleu_by_language", lambda *a: pytest.fail("CodeBLEU computed"))
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", samples, "--out", str(tmp_path / "out"),
                 "--workers", "2", "--no-codebleu", "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["codebleu"] is None and summary["pass@k"]["pass@1"] == 0.5 and summary["exact_match"] == 0.5


def test_progress_lines_when_not_a_terminal(tmp_path, samples, capsys):
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", samples, "--out", str(tmp_path / "o"),
                 "--workers", "2"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("evaluate: samples")]
    assert lines[0].startswith("evaluate: samples  1/8") and lines[-1].startswith("evaluate: samples  8/8")


def test_resume_continues_without_redoing(tmp_path, samples):
    out = tmp_path / "out"
    evaluate("humaneval", str(out), samples=samples, workers=2, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines()
    # Simulate an interrupted run: three results lost, the last line torn mid-write.
    (out / "results.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:25])
    kept = {(json.loads(line)["task_id"], json.loads(line)["completion_id"]): line for line in lines[:4]}
    evaluate("humaneval", str(out), samples=samples, workers=2, progress=False)
    rows = read_results(out / "results.jsonl")
    assert len(rows) == 8 and len({(r["task_id"], r["completion_id"]) for r in rows}) == 8
    for r in rows:  # the finished ones were not re-run (identical lines, timings included)
        key = (r["task_id"], r["completion_id"])
        if key in kept:
            assert json.loads(kept[key]) == r


def test_resume_refuses_a_different_evaluation(tmp_path, samples):
    out = tmp_path / "out"
    evaluate("humaneval", str(out), samples=samples, workers=1, progress=False)
    other = write_samples(tmp_path / "other.jsonl", [{"task_id": "HumanEval/0", "completion": "    pass\n"}])
    with pytest.raises(ValueError, match="holds a different evaluation"):
        evaluate("humaneval", str(out), samples=other, workers=1, progress=False)


def test_shards_merge_to_the_unsharded_result(tmp_path, samples):
    whole = evaluate("humaneval", str(tmp_path / "whole"), samples=samples, workers=2, progress=False)
    parts = []
    for i in range(3):
        part = evaluate("humaneval", str(tmp_path / f"s{i}"), samples=samples, workers=1, num_shards=3,
                        shard_index=i, progress=False)
        assert part["complete"]
        parts.append(str(tmp_path / f"s{i}"))
    merged = merge(str(tmp_path / "merged"), parts)
    for key in ("pass@k", "status_counts", "fpr", "rsr", "exact_match", "num_samples", "complete"):
        assert merged[key] == whole[key], key
    with pytest.raises(ValueError, match="expected shards 0..2"):
        merge(str(tmp_path / "bad"), parts[:2])


@pytest.mark.parametrize("content,message", [
    ('{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": "HumanEval/0"', "samples.jsonl:2: invalid JSON"),
    ('{"task_id": "HumanEval/0"}\n', "samples.jsonl:1: missing key 'completion'"),
    ('{"task_id": "HumanEval/999", "completion": ""}\n', "samples.jsonl:1: task_id 'HumanEval/999' is not in"),
    ('{"task_id": 3, "completion": ""}\n', "samples.jsonl:1: 'task_id' must be a string"),
    ('[1, 2]\n', "samples.jsonl:1: expected a JSON object"),
    ('\n\n', "samples.jsonl: no samples"),
])
def test_bad_samples_files_name_file_and_line(tmp_path, capsys, content, message):
    path = tmp_path / "samples.jsonl"
    path.write_text(content)
    rc = main(["evaluate", "--benchmark", "humaneval", "--samples", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_invalid_utf8_and_missing_file(tmp_path, capsys):
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"task_id": "HumanEval/0", "completion": "\xff"}\n')
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    assert main(["evaluate", "--benchmark", "humaneval", "--samples", str(tmp_path / "nope.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "cannot read samples file" in capsys.readouterr().err


def test_cli_rejects_unknown_benchmark_and_bad_k(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--benchmark", "humaneval-x-cobol", "--references", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--benchmark", "humaneval", "--references", "--out", str(tmp_path), "--k", "1,x"])
    assert "--k must be comma-separated integers" in capsys.readouterr().err


def test_generation_settings_are_recorded(tmp_path, samples):
    meta = {"temperature": 0.2, "top_p": 0.95, "n": 2, "max_new_tokens": 512, "stop": ["\ndef "]}
    (tmp_path / "samples.jsonl.meta.json").write_text(json.dumps(meta))
    summary = evaluate("humaneval", str(tmp_path / "out"), samples=samples, workers=2, progress=False)
    assert summary["generation"] == meta


def test_verdict_cache_judges_an_identical_program_once(tmp_path, samples, monkeypatch):
    import mftcoder_pp.evaluate as evaluate_module

    first = evaluate("humaneval", str(tmp_path / "a"), samples=samples, workers=2, progress=False,
                     verdict_cache=str(tmp_path / "cache"))
    assert first["verdict_cache"]["misses"] == 8 and first["verdict_cache"]["hits"] == 0
    calls = []
    real = evaluate_module.judge_all
    monkeypatch.setattr(evaluate_module, "judge_all", lambda jobs, *a, **kw: real(calls.extend(jobs) or jobs, *a, **kw))
    second = evaluate("humaneval", str(tmp_path / "b"), samples=samples, workers=2, progress=False,
                      verdict_cache=str(tmp_path / "cache"))
    assert calls == [] and second["verdict_cache"]["hits"] == 8
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k not in ("compile_seconds", "run_seconds")}  # noqa: E731
                                 for r in rows), key=lambda r: (r["task_id"], r["completion_id"]))
    assert strip(read_results(tmp_path / "a" / "results.jsonl")) == strip(read_results(tmp_path / "b" / "results.jsonl"))
    assert second["pass@k"] == first["pass@k"]
    # Other limits are another key: judged again.
    third = evaluate("humaneval", str(tmp_path / "c"), samples=samples, workers=2, progress=False, timeout=3.0,
                     verdict_cache=str(tmp_path / "cache"))
    assert third["verdict_cache"]["misses"] == 8
