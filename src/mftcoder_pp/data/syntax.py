"""Tree-sitter parsing for the six languages, and the syntax check of a training example.

Training outputs are often not whole programs: a HumanEval-style completion is a function body whose
signature sits in the input, an MBPP answer is a module, a Java answer may be a bare method. So the
check tries a few wrappers per language (the output alone, input + output, the output inside a
function or class) and passes when any of them parses without an ERROR or MISSING node. The
wrapper that parsed is returned: later steps (anonymisation) only touch outputs that parse alone.
"""

from __future__ import annotations

import functools
import importlib
from typing import Iterator

from tree_sitter import Language, Node, Parser, Tree

from ..languages import LANGUAGES
from .fences import code_blocks

@functools.lru_cache(maxsize=None)
def language(name: str) -> Language:
    if name not in LANGUAGES:
        raise ValueError(f"no tree-sitter grammar for {name!r} (known: {', '.join(sorted(LANGUAGES))})")
    return Language(importlib.import_module(LANGUAGES[name].tree_sitter).language())


@functools.lru_cache(maxsize=None)
def _parser(name: str) -> Parser:
    return Parser(language(name))


def parse(code: str, lang: str) -> Tree:
    return _parser(lang).parse(code.encode("utf-8"))


def parses(code: str, lang: str) -> bool:
    """True when `code` parses as `lang` with no ERROR or MISSING node."""
    return bool(code.strip()) and not parse(code, lang).root_node.has_error


@functools.lru_cache(maxsize=None)
def _string_query(lang: str):
    return language(lang).query("[" + " ".join(f"({t})" for t in LANGUAGES[lang].string_nodes) + "] @s")


def string_spans(tree: Tree, lang: str) -> list[tuple[int, int]]:
    """Byte spans of string literals that cover more than one line (the only ones a line-based
    rewrite could damage), sorted by start."""
    spans = sorted((n.start_byte, n.end_byte) for n, _ in _string_query(lang).captures(tree.root_node)
                   if n.start_point[0] != n.end_point[0])
    merged: list[tuple[int, int]] = []
    for start, end in spans:  # nested literals (an f-string inside an f-string) merge into one span
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _indent(code: str, prefix: str = "    ") -> str:
    return "".join(prefix + line if line.strip() else line for line in code.splitlines(keepends=True))


def wrappers(output: str, input: str, lang: str) -> Iterator[tuple[str, str]]:
    """(name, code) candidates in the order they are tried; 'output' must come first."""
    yield "output", output
    if input.strip():
        yield "input+output", input.rstrip("\n") + "\n" + output
        yield "input+output (joined)", input + output  # HumanEval-X: the prompt ends mid-line
    if lang == "python":
        yield "function body", "def _wrapper_():\n" + _indent(output)
    elif lang == "javascript":
        yield "function body", "function _wrapper_() {\n" + output + "\n}\n"
        yield "class body", "class _Wrapper_ {\n" + output + "\n}\n"
    elif lang == "java":
        yield "class body", "class _Wrapper_ {\n" + output + "\n}\n"
        yield "method body", "class _Wrapper_ { void _wrapper_() {\n" + output + "\n}}\n"
        if input.strip():
            yield "class body (input+output)", "class _Wrapper_ {\n" + input + output + "\n}\n"
    elif lang == "go":
        yield "package", "package main\n" + output
        yield "function body", "package main\nfunc _wrapper_() {\n" + output + "\n}\n"
        if input.strip():
            yield "package (input+output)", "package main\n" + input + output
    elif lang == "cpp":
        yield "function body", "void _wrapper_() {\n" + output + "\n}\n"
    elif lang == "rust":
        yield "function body", "fn _wrapper_() {\n" + output + "\n}\n"


def check(output: str, input: str, lang: str) -> str | None:
    """The name of the first wrapper under which the example parses, or None (a syntax error)."""
    for name, code in wrappers(output, input, lang):
        if parses(code, lang):
            return name
    return None


def check_example(output: str, input: str, lang: str) -> tuple[str | None, str]:
    """(how it parsed, or None; the first error when it did not). A chat answer with ``` fences is
    checked block by block: every block tagged `lang` (or, if none is, every untagged block) must
    parse on its own."""
    blocks = code_blocks(output)
    if not blocks:
        how = check(output, input, lang)
        return how, "" if how else first_error(output, lang)
    mine = [b for b in blocks if b.language == lang] or [b for b in blocks if not b.tag]
    if not mine:
        return None, f"no code block in {lang}"
    for b in mine:
        if check(b.code, "", lang) is None:
            line = output.count("\n", 0, b.start) + 1
            return None, f"code block starting at line {line}: {first_error(b.code, lang)}"
    return "fenced blocks", ""


def first_error(code: str, lang: str) -> str:
    """A short description of where `code` first fails to parse (for the report)."""
    root = parse(code, lang).root_node
    node = _find_error(root)
    if node is None:
        return "no error"
    what = "missing " + node.type if node.is_missing else "unexpected input"
    return f"{what} at line {node.start_point[0] + 1}, column {node.start_point[1] + 1}"


def _find_error(node: Node) -> Node | None:
    if node.is_error or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = _find_error(child)
            if found is not None:
                return found
    return None
