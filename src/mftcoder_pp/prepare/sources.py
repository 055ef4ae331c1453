"""The sources `mftpp prepare` reads from the project's own packages: MBPP's train and validation
splits, whose tests take the evaluation's own form (benchmarks/mbpp.py), and the synthetic suite's
training pools (mftcoder_pp.synthetic).

data/readers.py reads the files users bring; it sits below the benchmarks and the synthetic suite
and imports neither (docs/architecture.md, "Layers"), so these two readers live here, beside the
stage that uses them, with the resolution of a source's path.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Iterator

from ..config import ConfigError
from ..data.readers import Problem, Schema, read_source, snip
from ..data.records import Record, validate
from .config import MBPP_DISPLAY, PACKAGE_PREFIX, SourceConfig

MBPP_SPLITS = {"train": range(601, 975), "validation": range(511, 601)}


def packaged_mbpp() -> Path:
    """MBPP as shipped with the benchmarks (all 974 tasks; the evaluation uses 11-510)."""
    return Path(str(resources.files("mftcoder_pp.benchmarks").joinpath("data", "mbpp", "mbpp.jsonl.gz")))


def _mbpp(row: dict, *, name: str, where: str) -> dict:
    from ..benchmarks.mbpp import check_function, entry_point_of  # the evaluation's own test form

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
    from ..synthetic import generate_suite

    suite = generate_suite(seed, splits=(split,))
    for i, rec in enumerate(suite.records(split), 1):
        where = f"{name}:{i}"
        why = validate(asdict(rec))
        if why is not None:
            yield Problem(where, "invalid record", why, snip(rec.output))
            continue
        yield Record(**{**asdict(rec), "source": where, "meta": {**rec.meta, "source": name}})


def resolve_path(src: SourceConfig, base_dir: Path) -> Path | None:
    """`package:data/...` -> inside the installed package; a relative path -> next to the config."""
    if not src.path:
        return packaged_mbpp() if src.format == "mbpp" else None
    if src.path.startswith(PACKAGE_PREFIX):
        rel = src.path[len(PACKAGE_PREFIX):].lstrip("/")
        return Path(str(resources.files("mftcoder_pp").joinpath(rel)))
    path = Path(src.path).expanduser()
    return path if path.is_absolute() else base_dir / path


def source_path(src: SourceConfig, base_dir: Path, where: str) -> Path | None:
    """The resolved path of a source, which must be a file; `where` names the config key in errors."""
    path = resolve_path(src, base_dir)
    if path is None or path.is_file():
        return path
    shown = src.path or str(path)
    resolved = f" (resolved to {path})" if str(path) != shown else ""
    if src.path and src.path.startswith(PACKAGE_PREFIX):
        raise ConfigError(f"{where}: no such file in the mftcoder_pp package: {shown}{resolved}")
    if path.is_dir():
        raise ConfigError(f"{where}: {shown} is a directory, not a file{resolved}")
    if not path.exists():
        raise ConfigError(f"{where}: no such file: {shown}{resolved}")
    return path  # something else (a pipe, a device): reading it says whether it works


def read(src: SourceConfig, path: Path | None, seed: int) -> Iterator[Record | Problem]:
    """The records (and problems) of one source, in file order."""
    if src.format == "synthetic":
        yield from itertools.islice(read_synthetic(seed, src.label, src.split), src.limit)
        return
    assert path is not None
    yield from read_source(path, MBPP if src.format == "mbpp" else src.format, name=src.label, task=src.task,
                           language=None if src.language == "detect" else src.language, fields=src.fields,
                           split=src.split or "train", limit=src.limit, display=src.path or MBPP_DISPLAY)
