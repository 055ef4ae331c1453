"""Lexical normalisation of code and text. Every rewrite is one that cannot change what a program does.

- Line endings: CRLF and CR become LF; a leading byte-order mark is dropped.
- Trailing whitespace is removed from each line, except where the line break sits inside a
  multi-line string literal (found with tree-sitter), where the spaces are data.
- Indentation tabs become 4 spaces in every language except Go, where tab indentation is gofmt's
  canonical form and stays. Only the leading whitespace of a line is touched, never a line that
  starts inside a multi-line string. (Python 3 refuses indentation whose meaning depends on the tab
  width (TabError), so any file it accepts keeps its block structure when tabs are expanded.)
- Blank lines at the start and end are removed; code ends with exactly one newline.
- In chat answers (prose with ``` fences) each fenced block is normalised as code of its tag's
  language and the prose as text.

`normalise_code` is idempotent: normalising twice gives the same text as once (tested).
"""

from __future__ import annotations

import bisect
import re

from ..languages import LANGUAGES
from .fences import code_blocks
from .syntax import parse, string_spans

TAB_WIDTH = 4
_TRAILING = re.compile(r"[ \t\f\v]+$", re.M)


def normalise_text(text: str) -> str:
    """Prose (instructions): LF line ends, no trailing spaces, no surrounding blank lines."""
    text = _line_ends(text)
    return _TRAILING.sub("", text).strip("\n")


def normalise_code(code: str, language: str | None, final_newline: bool = True) -> str:
    """Code (or a chat answer with fenced code) in `language`; see the module docstring."""
    code = _line_ends(code)
    if code_blocks(code):
        out = _fenced(code, language)
    elif language in LANGUAGES:
        out = _code(code, language)
    else:
        out = _TRAILING.sub("", code)
    out = _strip_blank_edges(out)
    return out + "\n" if final_newline and out else out


def _line_ends(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _strip_blank_edges(text: str) -> str:
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def _code(code: str, language: str) -> str:
    data = code.encode("utf-8")
    spans = string_spans(parse(code, language), language)
    starts = [s for s, _ in spans]

    def inside(pos: int) -> bool:  # strictly inside a multi-line string literal
        i = bisect.bisect_right(starts, pos - 1) - 1
        return i >= 0 and spans[i][0] < pos < spans[i][1]

    out = []
    pos = 0
    expand = not LANGUAGES[language].keep_tabs
    for line in data.split(b"\n"):
        end = pos + len(line)
        if not spans or not inside(end):
            line = line.rstrip(b" \t\f\v")
        if expand and line[:1] in (b"\t", b" ") and b"\t" in line and (not spans or not inside(pos)):
            body = line.lstrip(b" \t")
            indent = line[:len(line) - len(body)]
            line = indent.expandtabs(TAB_WIDTH) + body
        out.append(line)
        pos = end + 1
    return b"\n".join(out).decode("utf-8")


def _fenced(text: str, language: str | None) -> str:
    out, prev = [], 0
    for block in code_blocks(text):
        out.append(_TRAILING.sub("", text[prev:block.start]))
        lang = block.language or (language if not block.tag else None)
        code = _code(block.code, lang) if lang in LANGUAGES else _TRAILING.sub("", block.code)
        code = _strip_blank_edges(code)
        out.append(code + "\n" if code and block.code.endswith("\n") else code)
        prev = block.end
    out.append(_TRAILING.sub("", text[prev:]))
    return "".join(out)
