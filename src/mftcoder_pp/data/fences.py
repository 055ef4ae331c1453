"""Markdown code fences in chat answers: find the blocks and map their tags to the six languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..execution.languages import LANGUAGES

# ```tag ... ``` (or ~~~); an unterminated fence runs to the end of the text.
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([^\s`]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)

# Fence tags seen in instruction data, beyond the names and aliases of the language table.
EXTRA_TAGS = {"py3": "python", "python2": "python", "cc": "cpp", "hpp": "cpp", "cplusplus": "cpp",
              "jsx": "javascript", "mjs": "javascript", "nodejs": "javascript", "javascript1.8": "javascript"}


@dataclass(frozen=True)
class Block:
    tag: str  # the fence tag as written, lower-cased ('' when untagged)
    language: str | None  # one of the six, or None (untagged or another language)
    code: str
    start: int  # character offsets of the code inside the text
    end: int


def fence_language(tag: str) -> str | None:
    """'py' -> 'python', 'c++' -> 'cpp', 'golang' -> 'go'; None for '' and other languages."""
    tag = tag.strip().lower().lstrip(".")
    if not tag:
        return None
    if tag in LANGUAGES:
        return tag
    for lang in LANGUAGES.values():
        if tag in lang.aliases:
            return lang.name
    return EXTRA_TAGS.get(tag)


def code_blocks(text: str) -> list[Block]:
    if "```" not in text and "~~~" not in text:
        return []
    return [Block(m.group(2).lower(), fence_language(m.group(2)), m.group(3), m.start(3), m.end(3))
            for m in _FENCE.finditer(text)]


def code_only(text: str, language: str | None = None) -> str:
    """The code of a chat answer: its fenced blocks in `language` (else untagged or all blocks),
    joined; text with no fences is returned as it is."""
    blocks = code_blocks(text)
    if not blocks:
        return text
    mine = [b for b in blocks if language and b.language == language] or [b for b in blocks if not b.tag] or blocks
    return "\n".join(b.code for b in mine)
