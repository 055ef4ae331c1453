"""The sources `mftpp prepare` reads from the project's own packages: MBPP's train and validation
splits, whose tests take the evaluation's own form (benchmarks/mbpp.py), and the synthetic suite's
training pools (mftcoder_pp.synthetic).

data/readers.py reads the files users bring; it sits below the benchmarks and the synthetic suite
and imports neither (docs/architecture.md, "Layers"), so these two readers live here, beside the
stage that uses them.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Iterator

from .data.readers import Problem, Schema, snip
from .data.records import Record, validate

MBPP_SPLITS = {"train": range(601, 975), "validation": range(511, 601)}


def packaged_mbpp() -> Path:
    """MBPP as shipped with the benchmarks (all 974 tasks; the evaluation uses 11-510)."""
    return Path(str(resources.files("mftcoder_pp.benchmarks").joinpath("data", "mbpp", "mbpp.jsonl.gz")))


def _mbpp(row: dict, *, name: str, where: str) -> dict:
    from .benchmarks.mbpp import check_function, entry_point_of  # the evaluation's own test form

    code = row["code"].replace("\r\n", "\n")
    asserts = [a.replace("\r\n", "\n").strip() for a in row["test_list"]]
    try:
        entry = entry_point_of(asserts, code)
    except SyntaxError:
        entry = None
    return {"id": f"{name}/{row['task_id']}", "task": "program", "language": "python",
            "instruction": row["text"].strip(), "input": "\n".join(asserts), "output": code,
            "tests": check_function(row.get("test_setup_code") or "", asserts), "entry_point": entry,
            "meta": {"mbpp_task_id": row["task_id"]}}


# read_source(packaged_mbpp(), MBPP, split="train" | "validation", ...)
MBPP = Schema(("task_id", "text", "code", "test_list"), "synthesis", _mbpp,
              keep=lambda row, split: row.get("task_id") in MBPP_SPLITS[split])


def read_synthetic(seed: int, name: str = "synthetic", split: str = "sft") -> Iterator[Record | Problem]:
    """A training pool of the project's synthetic multilingual suite (mftcoder_pp.synthetic):
    `pretrain` (all six languages) or `sft` (imbalanced, python >> rust)."""
    from .synthetic import generate_suite

    suite = generate_suite(seed, splits=(split,))
    for i, rec in enumerate(suite.records(split), 1):
        where = f"{name}:{i}"
        why = validate(asdict(rec))
        if why is not None:
            yield Problem(where, "invalid record", why, snip(rec.output))
            continue
        yield Record(**{**asdict(rec), "source": where, "meta": {**rec.meta, "source": name}})
