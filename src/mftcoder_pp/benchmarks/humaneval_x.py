"""HumanEval-X (CodeGeeX) and HumanEvalPack (OctoPack) in python, cpp, java, js, go and rust.

The completion continues the task's prompt. How the program is assembled per language (the
quirks are in SOURCES of the data and docs/evaluation.md):
- cpp: the `#include` lines of `declaration` + prompt + completion (CPP/38's declaration repeats
  solution lines, so declaration itself is not used).
- go: `package main`, one de-duplicated import block merging the test setup's and the prompt's
  imports, then the prompt without its import block, the completion and the test.
- rust: HumanEval-X's prompt is only the doc comment, so the text a model continues is prompt +
  declaration; HumanEvalPack's prompt starts with `fn main(){}`, which the harness's own `main`
  replaces.
"""

from __future__ import annotations

import re
from functools import cached_property

from ..languages import LANGUAGES
from .base import Task, read_jsonl

# HumanEval-X's file code -> our language name (python, cpp, java, js, go, rust: the table's order).
LANG_CODES = {lang.humaneval_x: lang.name for lang in LANGUAGES.values() if lang.humaneval_x}

_GO_IMPORT_BLOCK = re.compile(r"^import\s*\(\s*\n(.*?)^\)\s*$", re.M | re.S)
_GO_IMPORT_LINE = re.compile(r"^import\s+((?:\w+\s+)?\"[^\"]+\")\s*$", re.M)
_GO_PACKAGE = re.compile(r"^package\s+\w+\s*$", re.M)


def go_split_imports(text: str) -> tuple[list[str], str]:
    """(import specs, text without its package clause and import declarations)."""
    specs: list[str] = []
    for block in _GO_IMPORT_BLOCK.findall(text):
        specs += [s.strip() for s in block.splitlines() if s.strip() and not s.strip().startswith("//")]
    specs += _GO_IMPORT_LINE.findall(text)
    rest = _GO_IMPORT_LINE.sub("", _GO_IMPORT_BLOCK.sub("", _GO_PACKAGE.sub("", text)))
    return specs, rest


# Standard-library packages HumanEval-X Go solutions use without their prompt importing them.
GO_STD_PACKAGES = {name.rsplit("/", 1)[-1]: name for name in (
    "bytes", "container/heap", "crypto/md5", "errors", "fmt", "math", "math/big", "math/bits", "math/rand",
    "reflect", "regexp", "sort", "strconv", "strings", "time", "unicode", "unicode/utf8")}
_GO_NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|`[^`]*`|\'(?:\\.|[^\'\\\n])*\'', re.S)


def _go_package_name(spec: str) -> str:
    parts = spec.split()
    return parts[0] if len(parts) == 2 else parts[-1].strip('"').rsplit("/", 1)[-1]


def go_fix_imports(specs: list[str], body: str) -> list[str]:
    """What goimports would do for HumanEval-X: drop imports the code never uses (Go refuses them)
    and add the standard-library packages it uses without importing them (11 tasks' prompts lack
    or over-declare imports). Comments and string literals are ignored when looking for uses."""
    code = _GO_NOISE.sub(" ", body)
    used = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)\s*\.", code))
    kept = [s for s in dict.fromkeys(specs) if _go_package_name(s) in used or _go_package_name(s) == "_"]
    have = {_go_package_name(s) for s in kept}
    added = [f'"{GO_STD_PACKAGES[n]}"' for n in sorted(used - have) if n in GO_STD_PACKAGES]
    return kept + added


def go_program(setup: str, prompt: str, completion: str, test: str = "") -> str:
    """The Go program under test (the test is appended after it by the harness)."""
    setup_specs, setup_rest = go_split_imports(setup)
    prompt_specs, prompt_rest = go_split_imports(prompt)
    body = f"{setup_rest.strip()}\n{prompt_rest.lstrip()}{completion}"
    specs = go_fix_imports(setup_specs + prompt_specs, body + "\n" + test)
    imports = "import (\n" + "".join(f"    {s}\n" for s in specs) + ")\n" if specs else ""
    return f"package main\n\n{imports}{body}"


class HumanEvalX:
    completion_is_full_program = False

    def __init__(self, lang_code: str, pack: bool = False):
        if lang_code not in LANG_CODES:
            raise ValueError(f"unknown HumanEval-X language {lang_code!r}; known: {', '.join(LANG_CODES)}")
        self.lang_code, self.pack = lang_code, pack
        self.language = LANG_CODES[lang_code]
        self.name = f"{'humanevalpack' if pack else 'humaneval-x'}-{lang_code}"

    @cached_property
    def _rows(self) -> list[dict]:
        path = (f"humanevalpack/humanevalpack_{self.lang_code}.jsonl.gz" if self.pack
                else f"humaneval-x/humaneval_{self.lang_code}.jsonl.gz")
        return list(read_jsonl(path))

    @cached_property
    def _tasks(self) -> list[Task]:
        tasks = []
        for r in self._rows:
            prompt = r["prompt"]
            if self.language == "rust" and not self.pack:
                prompt = r["prompt"] + r["declaration"]
            tasks.append(Task(r["task_id"], self.language, prompt, r["canonical_solution"], r["test"],
                              r.get("entry_point"), instruction=r.get("instruction")))
        return tasks

    @cached_property
    def _by_id(self) -> dict[str, dict]:
        return {r["task_id"]: r for r in self._rows}

    def tasks(self) -> list[Task]:
        return self._tasks

    def program(self, task: Task, completion: str) -> str:
        row = self._by_id[task.task_id]
        if self.language == "cpp":
            includes = "".join(line + "\n" for line in row["declaration"].splitlines() if line.strip().startswith("#include"))
            return includes + task.prompt + completion
        if self.language == "go":
            return go_program(row.get("test_setup", "package main\n"), task.prompt, completion, task.test)
        if self.language == "rust":
            return re.sub(r"^\s*fn\s+main\s*\(\s*\)\s*\{\s*\}", "", task.prompt, count=1) + completion
        return task.prompt + completion
