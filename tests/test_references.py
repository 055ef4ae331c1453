"""Canonical solutions pass their own tests in the sandbox, except the documented known issues.

By default a deterministic slice of every benchmark runs (every 10th task plus every known-issue
task); MFTPP_ALL_REFERENCES=1 runs them all (the numbers in docs/evaluation.md come from that).
"""

import json
import os

import pytest

from mftcoder_pp.benchmarks import KNOWN_ISSUES, REGISTRY, get_benchmark
from mftcoder_pp.evaluate import evaluate, read_results

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

ALL = os.environ.get("MFTPP_ALL_REFERENCES") == "1"
# What a known-issue reference does here (Go/95 is flaky, so either outcome is accepted).
EXPECTED_KNOWN = {
    ("humaneval-x-js", "JavaScript/112"): {"failed"},
    ("humaneval-x-js", "JavaScript/155"): {"failed"},
    ("humaneval-x-go", "Go/95"): {"passed", "failed"},
    ("humanevalpack-go", "Go/95"): {"passed", "failed"},
    ("humaneval-x-rust", "Rust/32"): {"passed"},
    ("humaneval-x-rust", "Rust/50"): {"compile_error"},
    ("humanevalpack-rust", "Rust/32"): {"compile_error"},
    ("humanevalpack-rust", "Rust/50"): {"compile_error"},
    ("humanevalpack-js", "JavaScript/107"): {"passed"},
    ("humanevalpack-js", "JavaScript/136"): {"passed"},
    ("humanevalpack-js", "JavaScript/155"): {"passed"},
}


def test_expected_known_matches_registry():
    assert set(EXPECTED_KNOWN) == {(b, t) for b, tasks in KNOWN_ISSUES.items() for t in tasks}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_references_pass(tmp_path, name):
    bench = get_benchmark(name)
    known = KNOWN_ISSUES.get(name, {})
    tasks = [t for i, t in enumerate(bench.tasks()) if ALL or i % 10 == 0 or t.task_id in known]
    samples = tmp_path / "refs.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t.task_id, "completion": t.reference}) + "\n" for t in tasks))
    evaluate(name, str(tmp_path / "out"), samples=str(samples), workers=2, progress=False)
    for row in read_results(tmp_path / "out" / "results.jsonl"):
        expected = EXPECTED_KNOWN.get((name, row["task_id"]), {"passed"})
        assert row["status"] in expected, (row["task_id"], row["status"], row["detail"], row["stderr"][-500:])
        assert row["known_issue"] == known.get(row["task_id"])
