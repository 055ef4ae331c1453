"""How an artifact was made, recorded the same way by every stage: the package version, the git
commit of the code (and whether the tree had uncommitted changes), the library versions that decide
the numbers, and the time. Stages add their own config, config path and seed.

Also the one atomic JSON writer every stage uses (written beside, then renamed: a reader never sees
half a file). This module imports nothing from the package but its version."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

_LIBRARIES = ("torch", "transformers", "peft", "tokenizers")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, or None outside a git checkout."""
    return _git("rev-parse", "HEAD") or None


@functools.lru_cache(maxsize=1)
def git_dirty() -> bool | None:
    """True when the checkout has uncommitted changes (the commit alone does not say what ran)."""
    if git_commit() is None:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(**extra: Any) -> dict[str, Any]:
    """{"mftcoder_pp", "commit", "dirty", "python", "libraries", "host", "created", **extra}: the record
    every artifact carries (extra: the stage's config, config_path, seed, ...)."""
    return {"mftcoder_pp": __version__, "commit": git_commit(), "dirty": git_dirty(),
            "python": sys.version.split()[0], "libraries": _library_versions(), "host": platform.machine(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as JSON to `path` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n", encoding="utf-8")
    os.replace(tmp, path)
