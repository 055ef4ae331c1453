"""The continuous decoder: completes many rows with a fixed number of decoding slots, yielding each
row as soon as it ends.

One loop, top to bottom (`generate_stream`):
  1. admit: free slots take the next waiting rows (scheduler.py: longest prompt first); their
     prompts are prefilled in batches of similar length, or copied from a slot that holds the same
     prompt (the n samples of a task), into the slots' preallocated KV cache (kvcache.py);
  2. decode: one forward of the occupied slots, each row one token at its own position (stepper.py);
     when greedy, rows may add guesses from their own context, verified in the same forward
     (lookahead.py), each row as many as pay for themselves (padding to the step's longest row is
     nearly free: packed.py skips it in the linear layers);
  3. choose each row's token(s) (sampling.py) and check, on the new characters only, EOS, the row's
     stop sequences and max_new_tokens (stops.StopWatch); a row that ends is yielded and frees its slot;
  4. when nothing waits, move rows down into freed slots so the batch shrinks as rows end.
No step computes a row that has ended, and no row waits for a longer one (docs/generate.md has the
measurements against Hugging Face `generate`).

Greedy tokens do not depend on the batch: in float32 on CPU a row gets the tokens it gets alone
(tested on a tiny model); in lower precision kernels that depend on the batch shape can flip
near-ties. Sampled tokens come from each row's own generator (sampling.py), so they depend on the
row's seed, not on the scheduling.

Models whose cache layers are not all full attention (sliding windows, linear attention) go through
the padded decoder (padded.py) in batches of `slots` rows; `engine_name` says which one runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from . import kvcache, lookahead
from .grouped import grouped_attention
from .packed import Packed, can_pack, packed_linears
from .batching import plan_batches
from .rows import Output, Request, finish
from .sampling import Sampling, next_tokens, row_generator
from .scheduler import Scheduler
from .stepper import Stepper, hf_model
from .stops import StopWatch

__all__ = ["Output", "Request", "Sampling", "engine_name", "engine_settings", "generate_batch", "generate_stream"]

# Padded tokens per prefill forward: rows admitted together are prefilled in chunks of about this
# size (docs/generate.md, "prefill"); 0 would put every admitted prompt in one forward.
PREFILL_TOKENS = 2048
# Guesses per row and step (lookahead.py), and the cost of one more token in a step relative to the
# step's fixed cost: a float32 step of b rows of SmolLM2-135M costs about F + c*b, with c/F about 0.06
# on one 2-CPU host and 0.09-0.11 on another (docs/generate.md).
MAX_DRAFT = 4
TOKEN_COST = 1 / 12
# The cost of a padding position relative to a token's, when the packed linears skip padding
# (packed.py): what is left is its share of attention and of the element-wise work.
PAD_COST = 0.2
# Weight of the latest guess in a row's running rate of right guesses.
RATE_WEIGHT = 0.25


def engine_name(model) -> str:
    """"continuous" or, for models the slot cache cannot hold, "padded"."""
    return "continuous" if kvcache.supports(hf_model(model).config) else "padded"


def engine_settings(model, sampling: Sampling, slots: int) -> dict:
    """What `generate_stream` will run, for the record (samples.jsonl.meta.json)."""
    if engine_name(model) == "padded":
        return {"name": "padded", "batch_size": slots}
    greedy_guesses = not sampling.do_sample and not sampling.min_new_tokens
    packs = can_pack(model)
    return {"name": "continuous", "slots": slots, "prefill_tokens": PREFILL_TOKENS,
            "guesses_per_row": MAX_DRAFT if greedy_guesses else 0, "guess_token_cost": TOKEN_COST,
            "guess_pad_cost": PAD_COST if packs else 1.0,
            "linear_weights": "prepacked (oneDNN)" if packs else "as loaded"}


@dataclass
class _Slot:
    row: int
    prompt: tuple[int, ...]
    length: int  # positions in the cache
    next_input: int  # the token the next decoding step feeds
    watch: StopWatch
    generator: torch.Generator | None
    ngrams: lookahead.NgramIndex | None
    generated: list[int] = field(default_factory=list)
    acceptance: float = 0.5  # running rate of right guesses


@torch.inference_mode()
def generate_stream(model, tokenizer, requests: Sequence[Request], sampling: Sampling, eos_ids: Sequence[int],
                    pad_id: int | None, slots: int = 16, prefill_tokens: int = PREFILL_TOKENS,
                    guesses: bool = True, packed: bool = True, trace: list | None = None
                    ) -> Iterator[tuple[int, Output]]:
    """(request index, output) for every request, in the order rows end. guesses: let greedy rows
    verify guesses from their context (lookahead.py); packed: on a CPU, linear layers with prepacked
    weights (packed.py). `trace`, if given, receives the scheduler's events (admit/finish/move, step,
    slot, row)."""
    if not requests:
        return
    if any(not r.prompt for r in requests):
        raise ValueError("every prompt needs at least one token")
    if sampling.do_sample and any(r.seed is None for r in requests):
        raise ValueError("sampling needs a seed for every row")
    pad = 0 if pad_id is None else pad_id
    if engine_name(model) == "padded":
        yield from _padded(model, tokenizer, requests, sampling, eos_ids, pad, slots)
        return
    slots = min(slots, len(requests))  # no cache for slots that would never be used
    sched = Scheduler([len(r.prompt) for r in requests], slots)
    guesses = guesses and not sampling.do_sample and not sampling.min_new_tokens
    longest = max(len(r.prompt) for r in requests) + sampling.max_new_tokens
    stepper = Stepper(model, slots, longest + (MAX_DRAFT if guesses else 0))
    eos = set(eos_ids)
    no_eos = None
    if sampling.min_new_tokens and eos:
        no_eos = torch.zeros(hf_model(model).config.vocab_size, dtype=torch.bool, device=stepper.device)
        no_eos[sorted(eos)] = True
    table: list[_Slot | None] = [None] * slots  # the row in each slot
    cleanup = contextlib.ExitStack()
    packer = cleanup.enter_context(packed_linears(model, slots)) if packed else Packed()
    if guesses:  # steps that verify guesses attend on the key/value heads (grouped.py)
        cleanup.enter_context(grouped_attention(stepper.config))
    pad_cost = PAD_COST if packer else 1.0
    try:
        while True:
            # 1. admit
            admitted = sched.admit()
            for s, row in admitted:
                req = requests[row]
                table[s] = _Slot(row, tuple(req.prompt), len(req.prompt) - 1, req.prompt[-1],
                                 StopWatch(tokenizer, req.rule), row_generator(req.seed) if sampling.do_sample else None,
                                 lookahead.NgramIndex(req.prompt) if guesses else None)
            _fill(stepper, table, [s for s, _ in admitted], pad, prefill_tokens)
            # 2. compact: once no row waits, the rows left move down into the freed slots (the step
            # decodes slots 0..active-1; rows that ended together can outnumber the rows admitted)
            if not sched.waiting:
                for src, dst in sched.compact():
                    stepper.cache.copy(src, dst, table[src].length)
                    table[dst], table[src] = table[src], None
            b = sched.active
            if b == 0:
                break
            # 3. decode (with guesses to verify when they are expected to pay)
            live = table[:b]
            full = [[] for _ in live]  # each row's guess of its next tokens
            ks = [0] * b  # how many of them it feeds
            if guesses:
                full = [st.ngrams.draft(min(MAX_DRAFT, sampling.max_new_tokens - len(st.generated) - 1))
                        for st in live]
                ks = lookahead.plan(full, [st.acceptance for st in live], TOKEN_COST, pad_cost)
            drafts = [d[:k] for d, k in zip(full, ks)]
            q = 1 + max(ks)
            inputs = [[st.next_input, *d] + [st.next_input] * (q - 1 - len(d)) for st, d in zip(live, drafts)]
            real = None  # the fed tokens among the step's b x q (the rest is padding), when not all
            if any(k < q - 1 for k in ks):
                real = torch.tensor([i * q + j for i, k in enumerate(ks) for j in range(1 + k)], device=stepper.device)
            with packer.only(real, b * q):
                logits = stepper.decode(inputs, [st.length for st in live])  # (b, q, V)
            # 4. choose, check, yield
            new = _choose(logits, live, drafts, sampling, no_eos)
            if guesses:
                _learn(live, full, drafts, new)
            sched.step += 1
            for s, (st, tokens) in enumerate(zip(live, new)):
                reason = None
                for token in tokens:
                    st.generated.append(token)
                    if st.ngrams is not None:
                        st.ngrams.add(token)
                    if token in eos:
                        reason = "eos"
                    elif st.watch.add(token):
                        reason = "stop"
                    elif len(st.generated) >= sampling.max_new_tokens:
                        reason = "length"
                    if reason:
                        break
                if reason is None:
                    st.length += len(tokens)  # the step's input and the guesses kept are now cached
                    st.next_input = tokens[-1]
                    continue
                yield st.row, finish(tokenizer, st.generated, reason, requests[st.row].rule)
                sched.finish(s)
                table[s] = None
    finally:
        cleanup.close()
        if trace is not None:
            trace.extend(sched.trace)


def _fill(stepper: Stepper, table: list[_Slot | None], slots: list[int], pad: int, prefill_tokens: int) -> None:
    """Put the new rows' prompts (all but the last token) into their slots' cache: copied from a slot
    that already holds the same prompt, else prefilled together (equal prompts once)."""
    fresh: list[int] = []
    for i, s in enumerate(slots):
        prompt = table[s].prompt
        if len(prompt) == 1:
            continue
        unfilled = set(fresh) | set(slots[i:])
        sibling = next((t for t, st in enumerate(table) if st is not None and t not in unfilled
                        and st.prompt == prompt), None)
        if sibling is not None:
            stepper.cache.copy(sibling, s, len(prompt) - 1)
        else:
            fresh.append(s)
    if fresh:
        stepper.prefill(fresh, [table[s].prompt[:-1] for s in fresh], pad, prefill_tokens)


def _choose(logits: torch.Tensor, live: list[_Slot], drafts: list[list[int]], sampling: Sampling,
            no_eos: torch.Tensor | None) -> list[list[int]]:
    """The new tokens of each row from the step's logits (b, q, V). With guesses (q > 1, greedy): a
    guess stays while it is the model's own choice, and the last kept position gives one more token."""
    if logits.shape[1] > 1:
        choices = logits.float().argmax(-1).tolist()  # (b, q)
        new = []
        for d, y in zip(drafts, choices):
            kept = next((i for i, t in enumerate(d) if t != y[i]), len(d))
            new.append(y[:kept + 1])
        return new
    suppress = None
    if no_eos is not None and any(len(st.generated) < sampling.min_new_tokens for st in live):
        early = torch.tensor([len(st.generated) < sampling.min_new_tokens for st in live], device=no_eos.device)
        suppress = no_eos & early[:, None]  # (b, V)
    return [[t] for t in next_tokens(logits[:, 0], sampling, [st.generator for st in live], suppress)]


def _learn(live: list[_Slot], full: list[list[int]], drafts: list[list[int]], new: list[list[int]]) -> None:
    """Each row's running rate of right guesses, one guess at a time: the guesses it fed up to the first
    wrong one, or, when it fed none, whether its first guess was the token the model chose (known for
    free after the step)."""
    for st, f, d, tokens in zip(live, full, drafts, new):
        if d:
            kept = len(tokens) - 1
            outcomes = [1.0] * kept + ([0.0] if kept < len(d) else [])
        else:
            outcomes = [float(f[0] == tokens[0])] if f else []
        for x in outcomes:
            st.acceptance += RATE_WEIGHT * (x - st.acceptance)


def _padded(model, tokenizer, requests, sampling, eos_ids, pad, slots) -> Iterator[tuple[int, Output]]:
    """The padded decoder over batches of `slots` rows of one stop rule, similar lengths together."""
    from .padded import generate_batch as padded_batch

    keys = [json.dumps(r.rule.to_dict() if r.rule else None) for r in requests]
    for batch in plan_batches(keys, [len(r.prompt) for r in requests], slots):
        seed = None
        if sampling.do_sample:
            digest = hashlib.sha256(json.dumps([requests[i].seed for i in batch]).encode()).digest()
            seed = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
        outs = padded_batch(model, tokenizer, [requests[i].prompt for i in batch], sampling, requests[batch[0]].rule,
                            eos_ids, pad, seed=seed)
        yield from zip(batch, outs)


def generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], sampling: Sampling, rule, eos_ids,
                   pad_id: int | None, seeds: Sequence[int] | None = None, slots: int | None = None,
                   on_output: Callable[[int, Output], None] | None = None, **options) -> list[Output]:
    """Outputs of `prompts` in their order. rule: one stop rule (or None) for every row, or a list with
    one per row; seeds: one per row when sampling; slots: len(prompts) by default. on_output(i, output)
    is called as soon as row i ends, before this returns (for writing results while others decode).
    options: `generate_stream`'s (guesses, packed, prefill_tokens, trace)."""
    rules = list(rule) if isinstance(rule, (list, tuple)) else [rule] * len(prompts)
    reqs = [Request(tuple(p), rules[i], None if seeds is None else seeds[i]) for i, p in enumerate(prompts)]
    out: list[Output | None] = [None] * len(reqs)
    for i, o in generate_stream(model, tokenizer, reqs, sampling, eos_ids, pad_id, slots or max(len(reqs), 1),
                                **options):
        out[i] = o
        if on_output is not None:
            on_output(i, o)
    return out  # type: ignore[return-value]
