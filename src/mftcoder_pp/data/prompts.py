"""The prompt schema (paper 3.6): `Instruction / Input / Output`, with templated variations per
language, assigned deterministically by seed, and the response-only loss mask that follows it.

Every variant keeps the three fields in the same order and ends with the output marker, so the
boundary between prompt (no loss) and response (loss) is always the end of the rendered prompt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from ..languages import LANGUAGES

IGNORE_INDEX = -100  # label value the cross-entropy ignores

# {lang} is the display name. The first variant is the paper's schema verbatim.
TEMPLATES: tuple[str, ...] = (
    "Instruction: {instruction}\nInput: {input}\nOutput: ",
    "Instruction ({lang}): {instruction}\nInput:\n{input}\nOutput:\n",
    "### Instruction\n{instruction}\n\n### Input ({lang})\n{input}\n\n### Output\n",
    "Instruction: In {lang}, {instruction_lc}\nInput: {input}\nOutput: ",
    "Instruction: {instruction}\nLanguage: {lang}\nInput:\n{input}\nOutput:\n",
)


def display_name(language: str) -> str:
    """'cpp' -> 'C++' (the table's display name); a language not in the table is shown as named."""
    lang = LANGUAGES.get(language)
    return lang.display if lang else language


def language_token(language: str) -> str:
    """The language prefix token (added to the tokenizer as a special token)."""
    return f"<|{language}|>"


def variant_for(record_id: str, seed: int, n_variants: int = len(TEMPLATES)) -> int:
    """Which template a record gets: a deterministic shuffle by (seed, id), independent of order."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % n_variants


def render_prompt(instruction: str, input: str, language: str, variant: int = 0,
                  language_prefix: bool = False) -> str:
    """The prompt text: everything before the response."""
    if not 0 <= variant < len(TEMPLATES):
        raise ValueError(f"prompt variant must be in [0, {len(TEMPLATES)}), got {variant}")
    lang = display_name(language)
    instruction = instruction.strip()
    lc = instruction[:1].lower() + instruction[1:]
    text = TEMPLATES[variant].format(instruction=instruction, instruction_lc=lc, input=input.rstrip("\n"), lang=lang)
    return (language_token(language) + text) if language_prefix else text


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens: loss on the response only
    truncated: bool


def build_example(prompt_ids: Sequence[int], response_ids: Sequence[int], max_length: int,
                  eos_id: int | None = None) -> Example | None:
    """Concatenate prompt and response token ids with the response-only loss mask.

    The response ends with EOS (so generation learns to stop). Sequences longer than
    `max_length` keep the whole prompt and cut the response; when the prompt alone leaves no room
    for at least one response token, the example is unusable and None is returned (callers count
    it, never drop it silently).
    """
    response = list(response_ids) + ([eos_id] if eos_id is not None else [])
    prompt = list(prompt_ids)
    room = max_length - len(prompt)
    if room < 1 or not response:
        return None
    truncated = len(response) > room
    response = response[:room]
    return Example(prompt + response, [IGNORE_INDEX] * len(prompt) + response, truncated)
