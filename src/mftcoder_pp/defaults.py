"""The default settings of `mftpp generate` and `mftpp evaluate`, in one place.

The library functions (`generate.generate`, `evaluate.evaluate`) take them as their keyword defaults
and the command line shows and passes the same values, so a default is changed here and nowhere
else. This module imports nothing (the command line reads it without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerateDefaults:
    n: int = 1
    temperature: float = 0.0  # greedy
    top_p: float = 0.95  # when sampling
    max_new_tokens: int = 256
    batch_size: int = 16  # decoding slots
    prompt_format: str = "instruct"
    language_prefix: str = "auto"
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    num_shards: int = 1
    shard_index: int = 0


@dataclass(frozen=True)
class EvaluateDefaults:
    k: tuple[int, ...] = (1, 10, 100)
    num_shards: int = 1
    shard_index: int = 0
    isolation: str = "auto"
    timeout: float = 10.0  # CPU seconds per program run
    memory_mb: int = 2048  # address-space limit per process


GENERATE = GenerateDefaults()
EVALUATE = EvaluateDefaults()
