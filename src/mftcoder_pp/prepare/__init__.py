"""`mftpp prepare`: raw sources -> canonical JSONL per task, plus a report with figures.

config.py holds the schema, sources.py what each source format reads (and the project's own
sources: MBPP's training splits, the synthetic suite's pools), steps.py the filtering and rewriting
steps, pipeline.py the order they run in and what is written."""

from .config import DecontaminationConfig, NearDedupConfig, PrepareConfig, PrepareError, SourceConfig, StepsConfig
from .pipeline import prepare, run_prepare

__all__ = ["DecontaminationConfig", "NearDedupConfig", "PrepareConfig", "PrepareError", "SourceConfig", "StepsConfig",
           "prepare", "run_prepare"]
