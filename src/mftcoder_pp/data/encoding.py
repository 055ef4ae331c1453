"""Token ids of a prompt, the same at training time and at generation time.

A tokenizer's defaults may add special tokens around a text: Llama-2- and Mistral-style tokenizers put
BOS in front, a few append EOS. Training builds an example from pieces (prompt, response, EOS), so it
tokenizes each piece without special tokens; generation tokenizes the prompt alone. If each used its
own rule, a model with a BOS would be trained on `prompt` and asked `<s> prompt`. So both take the
prompt from `prompt_ids`: the tokens the tokenizer puts in front of a text by default (its BOS, when
it adds one), then the text without special tokens. What a tokenizer appends (EOS) never follows a
prompt: the response does, or the model's continuation.

SmolLM2, Qwen2.5 and the project's own tokenizers add nothing by default, so their prompts are just
the text's tokens; a tokenizer that adds BOS gets it at the start of every example and every prompt.
"""

from __future__ import annotations

_PROBE = "a"


def leading_special_ids(tokenizer) -> list[int]:
    """The ids a tokenizer's default encoding puts before a text (e.g. [bos_id]); [] for most."""
    plain = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []  # the default encoding rewrites the text itself: add nothing rather than guess


def prompt_ids(tokenizer, text: str, lead: list[int] | None = None) -> list[int]:
    """The ids of a text that starts a sequence. `lead`: `leading_special_ids(tokenizer)`, computed once
    by callers that encode many texts."""
    lead = leading_special_ids(tokenizer) if lead is None else lead
    return list(lead) + tokenizer(text, add_special_tokens=False)["input_ids"]
