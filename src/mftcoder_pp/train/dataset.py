"""Training examples from prepared data: records -> token ids with the response-only loss mask.

A task is (task type, language), keyed "synthesis/rust". SFT examples render the prompt schema
(data/prompts.py) with the record's template variant and put the loss on the response (+ EOS) only;
pretraining examples are the code itself (input, a line break, output) and/or, with
`data.pretrain_formats: [code, prompt]`, the SFT rendering as plain text, with the loss on every token.
Examples too long for `max_length` keep their prompt and lose response tail (counted); examples whose
prompt alone does not fit are skipped and counted — never silently.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass

from ..data.encoding import leading_special_ids, prompt_ids
from ..data.prompts import IGNORE_INDEX, build_example, language_token, render_prompt
from ..data.records import DataError, from_row, read_prepared


@dataclass(frozen=True)
class TrainExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss
    task: int  # index into Corpus.tasks
    language: str

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE_INDEX)  # shifted: position 0 is never a target


@dataclass
class Corpus:
    tasks: list[str]  # sorted task keys
    train: dict[str, list[TrainExample]]
    dev: dict[str, list[TrainExample]]
    stats: dict  # per task: records, truncated, skipped, tokens

    def sizes(self) -> dict[str, int]:
        return {t: len(self.train[t]) for t in self.tasks}


def _prompt(rec, language_prefix: bool) -> str:
    return render_prompt(rec.instruction, rec.input, rec.language, rec.meta.get("prompt_variant", 0),
                         language_prefix=language_prefix)


def pretrain_text(input: str, output: str) -> str:
    """A record as one text. Prepared inputs and outputs are whole lines without the break between them
    (normalisation strips the input's final newline), so they are joined with one."""
    if not input or input.endswith("\n") or output.startswith("\n"):
        return input + output
    return input + "\n" + output


def select_tasks(keys: set[str], patterns: list[str] | None, where: str = "data.tasks") -> list[str]:
    """Task keys matching any pattern; a pattern matching nothing is an error (a typo, usually)."""
    if patterns is None:
        return sorted(keys)
    chosen = set()
    for pat in patterns:
        hits = {k for k in keys if fnmatch.fnmatchcase(k, pat)}
        if not hits:
            raise DataError(f"{where}: {pat!r} matches no task (have: {', '.join(sorted(keys))})")
        chosen |= hits
    return sorted(chosen)


def build_corpus(paths: list[str], tokenizer, *, max_length: int, stage: str = "sft", tasks: list[str] | None = None,
                 language_prefix: bool = True, dev_per_task: int = 0, max_per_task: int | None = None,
                 seed: int = 0, pretrain_formats: tuple[str, ...] = ("code",)) -> Corpus:
    rows = read_prepared(paths)
    by_task: dict[str, list] = {}
    for row in rows:
        rec = from_row(row)
        by_task.setdefault(rec.task_key, []).append(rec)
    keys = select_tasks(set(by_task), tasks)
    vocab = tokenizer.get_vocab()
    eos = tokenizer.eos_token_id
    lead = leading_special_ids(tokenizer)  # the tokenizer's BOS, if it adds one: generation starts with it too
    train: dict[str, list[TrainExample]] = {}
    dev: dict[str, list[TrainExample]] = {}
    stats: dict[str, dict] = {}
    for ti, key in enumerate(keys):
        recs = list(by_task[key])
        random.Random(f"{seed}:{key}").shuffle(recs)  # dev split and cap independent of file order
        if max_per_task is not None:
            recs = recs[:max_per_task + dev_per_task]
        examples, truncated, skipped = [], 0, 0
        for rec in recs:
            prefix = language_prefix and language_token(rec.language) in vocab
            if stage == "pretrain":
                for fmt in pretrain_formats:  # a record's renderings stay together (same side of the dev split)
                    if fmt == "code":
                        text = (language_token(rec.language) if prefix else "") + pretrain_text(rec.input, rec.output)
                        ids = prompt_ids(tokenizer, text, lead)
                    else:  # tokenized as SFT and generation do: the prompt alone, then the response
                        ids = (prompt_ids(tokenizer, _prompt(rec, prefix), lead)
                               + tokenizer(rec.output, add_special_tokens=False)["input_ids"])
                    ids = ids[:max_length - 1] + [eos]
                    truncated += len(ids) == max_length
                    examples.append(TrainExample(ids, list(ids), ti, rec.language))
                continue
            p_ids = prompt_ids(tokenizer, _prompt(rec, prefix), lead)
            r_ids = tokenizer(rec.output, add_special_tokens=False)["input_ids"]
            ex = build_example(p_ids, r_ids, max_length, eos)
            if ex is None:
                skipped += 1
                continue
            truncated += ex.truncated
            examples.append(TrainExample(ex.input_ids, ex.labels, ti, rec.language))
        n_dev = dev_per_task * (len(pretrain_formats) if stage == "pretrain" else 1)  # whole records
        if len(examples) <= n_dev:
            raise DataError(f"task {key}: {len(examples)} usable examples, need more than data.dev_per_task="
                            f"{dev_per_task} (skipped {skipped} whose prompt exceeds max_length={max_length}); leave the task "
                            f"out with data.tasks, or lower data.dev_per_task")
        dev[key], train[key] = examples[:n_dev], examples[n_dev:]
        stats[key] = {"records": len(recs), "train": len(train[key]), "dev": len(dev[key]), "truncated": truncated,
                      "skipped_prompt_too_long": skipped, "tokens": sum(map(len, examples))}
    return Corpus(keys, train, dev, stats)
