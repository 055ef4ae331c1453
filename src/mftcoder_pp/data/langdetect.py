"""Which of the six languages a training example is in, when the source does not say.

Order of evidence: (1) code fences tagged with one of the six languages (the language with the most
fenced code wins); (2) for untagged fences, or text with no fences at all, lexical heuristics
(weighted regexes per language, plus a mention of the language in the instruction) confirmed by a
tree-sitter parse. Fences tagged only with other languages (bash, lua, c, ...) and prose with no
code give None: the caller rejects the example as "unknown language".
"""

from __future__ import annotations

import re

from .fences import code_blocks
from .syntax import parses

_M = re.M
HEURISTICS: dict[str, tuple[re.Pattern, ...]] = {
    "python": tuple(re.compile(p, _M) for p in (
        r"^\s*def \w+\s*\(.*\)\s*(->\s*[^:]+)?:\s*$", r"^\s*(from [\w.]+ )?import \w+[\w., ]*$",
        r"^\s*class \w+(\(.*\))?:\s*$", r"^\s*(if|elif|while|for|with) .+:\s*$", r"\bself\.\w+",
        r"^\s*print\(", r"\b(None|True|False)\b", r"^\s*(else|try|finally):\s*$")),
    "java": tuple(re.compile(p, _M) for p in (
        r"\b(public|private|protected)\s+(static\s+)?(final\s+)?(class|void|int|String|boolean|long)\b",
        r"\bSystem\.out\.print", r"\bString\[\]", r"^\s*import java\.", r"@Override", r"\bnew \w+(<[^>]*>)?\(",
        r"\b(ArrayList|HashMap|List|Map)<")),
    "go": tuple(re.compile(p, _M) for p in (
        r"^package \w+\s*$", r"^\s*func\s+(\(\w+ \*?\w+\)\s*)?\w+\(", r"\w+\s*:=", r"\bfmt\.\w+\(",
        r'^import (\($|")', r"\bnil\b", r"\bgo func\b|\bchan\b")),
    "cpp": tuple(re.compile(p, _M) for p in (
        r"^\s*#include\s*[<\"]", r"\bstd::", r"\bcout\s*<<|\bcin\s*>>", r"^\s*using namespace std", r"\bvector<",
        r"\bint main\s*\(", r"\b(unsigned|size_t|const\s+\w+\s*&)")),
    "javascript": tuple(re.compile(p, _M) for p in (
        r"\bfunction\s*\w*\s*\(", r"\bconsole\.log\(", r"^\s*(const|let|var)\s+\w+\s*=", r"\)\s*=>",
        r"\b(document|window)\.\w+", r"\brequire\(|\bmodule\.exports\b", r"===|!==")),
    "rust": tuple(re.compile(p, _M) for p in (
        r"\bfn\s+\w+\s*(<[^>]*>)?\(", r"\blet\s+mut\b", r"\b(println|vec|format|assert_eq)!", r"^\s*impl\b",
        r"&str\b|&mut\b", r"\bpub fn\b", r"::new\(|\.unwrap\(\)", r"^\s*use (std|crate)::")),
}

MENTIONS = {
    "python": re.compile(r"\bpython\b", re.I), "java": re.compile(r"\bjava\b(?!\s*script)", re.I),
    "go": re.compile(r"\b(golang|go (code|program|function))\b|\bin go\b", re.I),
    "cpp": re.compile(r"c\+\+|\bcpp\b", re.I), "javascript": re.compile(r"\b(javascript|node\.?js)\b", re.I),
    "rust": re.compile(r"\brust\b", re.I),
}


def scores(code: str, instruction: str = "") -> dict[str, int]:
    """Heuristic hits per language (a mention of the language in the instruction counts one)."""
    out = {lang: sum(1 for p in patterns if p.search(code)) for lang, patterns in HEURISTICS.items()}
    for lang, pattern in MENTIONS.items():
        if instruction and pattern.search(instruction):
            out[lang] += 1
    return out


def guess(code: str, instruction: str = "", min_score: int = 1) -> str | None:
    """The best-scoring language among those whose parse of `code` succeeds; when none parses (a
    fragment), the best score if it reaches min_score + 1; ties go to the first in table order."""
    ranked = sorted(((s, lang) for lang, s in scores(code, instruction).items() if s >= min_score),
                    key=lambda x: -x[0])
    for _, lang in ranked:
        if parses(code, lang):
            return lang
    if ranked and ranked[0][0] >= min_score + 1:
        return ranked[0][1]
    return None


def detect_language(output: str, input: str = "", instruction: str = "") -> str | None:
    """The language of an example, or None when it holds no code in one of the six languages."""
    blocks = code_blocks(output) + code_blocks(input)
    if blocks:
        sizes: dict[str, int] = {}
        for b in blocks:
            if b.language:
                sizes[b.language] = sizes.get(b.language, 0) + len(b.code)
        if sizes:
            return max(sorted(sizes), key=lambda lang: sizes[lang])
        untagged = "\n".join(b.code for b in blocks if not b.tag)
        return guess(untagged, instruction) if untagged.strip() else None
    # No fences: the whole text must look like code in one language and parse as it.
    found = guess(output, instruction, min_score=2)
    if found is None and input.strip():  # a completion whose signature is in the input
        found = guess(input + "\n" + output, instruction, min_score=2)
    return found
