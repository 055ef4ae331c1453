"""What a row of generation asks for and what it gives back.

A row is one sample of one task: its prompt's token ids, its language's stop rule and, when
sampling, its own seed. Its output is the completion cut by the stop rule, with the generated
tokens and why generation ended; `finish` turns a row's generated tokens into that output, the same
way for every decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .stops import StopRule


@dataclass(frozen=True)
class Request:
    prompt: tuple[int, ...]  # token ids (non-empty)
    rule: StopRule | None = None  # None: stop at EOS or max_new_tokens only
    seed: int | None = None  # the row's sampling seed (sampling only)


@dataclass(frozen=True)
class Output:
    text: str  # the completion, cut by the stop rule
    num_tokens: int  # generated tokens, EOS included, up to the stop
    finish_reason: str  # "eos" | "stop" | "length"
    token_ids: tuple[int, ...] = ()  # the generated tokens up to the stop, EOS included


def finish(tokenizer, generated: Sequence[int], reason: str, rule: StopRule | None) -> Output:
    """The output of a row that generated `generated` (EOS last when reason is "eos")."""
    kept = list(generated[:-1]) if reason == "eos" else list(generated)
    text = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    if rule is not None:
        text = rule.truncate(text)[0]
    return Output(text, len(generated), reason, tuple(generated))
