"""Where a generated completion ends: the cut rule over the stop sequences of the language table.

A completion is cut at the earliest occurrence of any stop sequence of its rule:
- a `cut_before` sequence is removed with everything after it (python: a new top-level statement
  such as "\\ndef " or "\\nprint(" means the function body is over);
- a `cut_after` sequence is kept and everything after it removed (brace languages: "\\n}" is the
  closing brace of the function at column 0, or of Java's `class Solution`, which ends the program).

The completion is matched as if it started on a new line (a virtual "\\n" in front of it): every
prompt ends at the start of the body's first line, so a completion that begins with "}" or "def " has
closed the function already. Both cut and stop during generation use the same rule, so generation
stops at the token that completes a stop sequence and the cut only removes that token's overhang.

During generation `StopWatch` follows one row: it detokenizes only the new token (with a few tokens
of context, see `IncrementalText`) and looks for the stop sequences only in the new characters and
the `longest - 1` before them, so a step costs the same at token 10 and at token 1000.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..languages import FENCE, LANGUAGES


@dataclass(frozen=True)
class StopRule:
    cut_before: tuple[str, ...] = ()
    cut_after: tuple[str, ...] = ()

    @property
    def sequences(self) -> tuple[str, ...]:
        return self.cut_before + self.cut_after

    @property
    def longest(self) -> int:
        return max((len(s) for s in self.sequences), default=0)

    def to_dict(self) -> dict:
        return {"cut_before": list(self.cut_before), "cut_after": list(self.cut_after)}

    def find(self, text: str) -> int | None:
        """End of the kept text (an index into `text`) at the earliest stop sequence, or None."""
        virtual = "\n" + text
        best: tuple[int, int] | None = None  # (start in virtual, end of kept text in text)
        for seq in self.cut_before:
            i = virtual.find(seq)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, max(i - 1, 0))
        for seq in self.cut_after:
            i = virtual.find(seq)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, i + len(seq) - 1)
        return None if best is None else best[1]

    def truncate(self, text: str) -> tuple[str, bool]:
        """(the completion cut at the earliest stop sequence, whether one was found)."""
        end = self.find(text)
        return (text, False) if end is None else (text[:end], True)


@functools.lru_cache(maxsize=None)
def stop_rule(language: str, full_program: bool = False) -> StopRule:
    """The rule for a completion in `language` (a function body, or a whole program for MBPP-style
    benchmarks), from the language table. Unknown languages, and whole programs in languages with
    no program rule, only stop at a closing fence (and EOS)."""
    lang = LANGUAGES.get(language)
    if lang is None or (full_program and lang.program_cut_before is None):
        return StopRule(cut_before=(FENCE,))
    if full_program:
        return StopRule(cut_before=lang.program_cut_before)
    return StopRule(cut_before=lang.body_cut_before, cut_after=lang.body_cut_after)


class IncrementalText:
    """The decoded text of a growing token list, one token at a time.

    Decoding tokens one by one is wrong in two ways: a character split over several byte tokens
    decodes to U+FFFD until its last byte arrives, and SentencePiece-style decoders drop the leading
    space of a sequence. So each new piece is the difference between decoding a short window with
    the new tokens and the same window without them (the window starts a few tokens back), and it is
    only taken once it no longer ends in an incomplete character (the usual incremental detokenizer,
    as in text streamers and serving engines)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # window start
        self._read = 0  # tokens already in `text`

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, token: int) -> str:
        """Append a token; returns the characters that became final (possibly "")."""
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            new = after[len(before):]
            self.text += new
            self._prefix, self._read = self._read, len(self.ids)
            return new
        return ""


class StopWatch:
    """Whether one generated row has produced a stop sequence of its rule yet (the completion matched
    as if it began on a new line, as `StopRule.find` does)."""

    def __init__(self, tokenizer, rule: StopRule | None):
        self.text = IncrementalText(tokenizer)
        self.sequences = rule.sequences if rule else ()
        self.keep = max((rule.longest - 1) if rule else 0, 0)

    def add(self, token: int) -> bool:
        new = self.text.add(token)
        if not new or not self.sequences:
            return False
        # A sequence not seen before ends in the new characters: look at them and the `keep` before
        # (the virtual new line counts while the text is shorter than that).
        need, text = len(new) + self.keep, self.text.text
        tail = text[-need:] if len(text) >= need else "\n" + text
        return any(s in tail for s in self.sequences)
