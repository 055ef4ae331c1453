"""Markdown code fences in chat answers: find the blocks and map their tags to the six languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..languages import LANGUAGES

# ```tag ... ``` (or ~~~); an unterminated fence runs to the end of the text.
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([^\s`]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)

# Tag -> language: each language's name, aliases and the further tags seen in instruction data
# (no tag names two languages: tests/test_language_table.py).
_TAGS = {tag: lang.name for lang in LANGUAGES.values() for tag in (lang.name, *lang.aliases, *lang.fence_tags)}


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
    return _TAGS.get(tag) if tag else None


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
