"""MBPP (Austin et al. 2021): the test split (task ids 11-510) and its sanitized subset.

The completion is the whole solution. The three `test_list` asserts become one `check` function
(one test case each); `challenge_test_list` is not used, as in the original evaluation.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import json
import warnings
from functools import cached_property
from importlib import resources

from ..pyparse import parse
from .base import Task, read_jsonl

TEST_IDS = range(11, 511)
CHECK_NAME = "mbpp_check__"
PROMPT = "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n"


def entry_point_of(asserts: list[str], reference: str) -> str | None:
    """The function the tests call: the first called name the reference defines (some references
    shadow builtins, e.g. `sum`), else the first called name that is not a builtin."""
    with warnings.catch_warnings():  # some references hold invalid escapes like "\w"
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = parse(reference)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    called = [node.func.id for line in asserts for node in ast.walk(parse(line))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    for name in called:
        if name in defined:
            return name
    return next((name for name in called if not hasattr(builtins, name)), None)


def check_function(setup: str, asserts: list[str]) -> str:
    """The asserts as a check function. Its name cannot be `check`: some MBPP solutions define
    `check` themselves (tasks 56, 349)."""
    body = "".join(f"    {a.strip()}\n" for a in asserts)
    return f"{setup.strip()}\n\ndef {CHECK_NAME}(candidate):\n{body}"


def _normalise(code: str) -> str:
    return code.replace("\r\n", "\n").replace("\t", "    ")


class MBPP:
    name = "mbpp"
    completion_is_full_program = True

    def __init__(self, sanitized: bool = False):
        self.sanitized = sanitized
        if sanitized:
            self.name = "mbpp-sanitized"

    @cached_property
    def _tasks(self) -> list[Task]:
        if self.sanitized:
            ref = resources.files("mftcoder_pp.benchmarks").joinpath("data", "mbpp", "sanitized-mbpp.json.gz")
            rows = json.loads(gzip.decompress(ref.read_bytes()))
            text_key, setup_of = "prompt", (lambda r: "\n".join(r["test_imports"]))
        else:
            rows = list(read_jsonl("mbpp/mbpp.jsonl.gz"))
            text_key, setup_of = "text", (lambda r: r["test_setup_code"])
        tasks = []
        for r in rows:
            if r["task_id"] not in TEST_IDS:
                continue
            asserts = [_normalise(a) for a in r["test_list"]]
            prompt = PROMPT.format(text=r[text_key].strip(), tests="\n".join(asserts))
            tasks.append(Task(f"{'MbppSanitized' if self.sanitized else 'Mbpp'}/{r['task_id']}", "python", prompt,
                              _normalise(r["code"]), check_function(_normalise(setup_of(r)), asserts),
                              entry_point_of(asserts, _normalise(r["code"])), instruction=r[text_key].strip()))
        return sorted(tasks, key=lambda t: int(t.task_id.split("/")[1]))

    def tasks(self) -> list[Task]:
        return self._tasks

    def program(self, task: Task, completion: str) -> str:
        return completion
