"""The padded decoder: Hugging Face `generate` on a left-padded batch, with a stopping criterion that
ends each row at EOS or at its stop sequences. A batch runs until its last row ends.

`mftpp generate` uses the continuous decoder (engine.py); this one serves the models whose cache the
slot cache cannot hold (sliding-window or linear-attention layers, kvcache.supports) and is kept as a
reference. Two things make it faster than plain `generate` on a padded batch:
- the KV cache is preallocated for prompt + max_new_tokens (`GrowingLayer`): a decoding step writes
  one position in place, where the default cache concatenates (copies) the whole cache per step;
- on CPU the prompts are prefilled one row at a time (no padding, activations that fit in the CPU
  caches) and their keys/values placed, left-padded, into the batch's cache; `generate` then starts
  from the last prompt token. On GPUs the batch is prefilled at once, as usual.
Neither changes what is computed: in float32 on CPU the greedy tokens of a batch equal those of each
prompt alone and of plain `generate` (tested; in lower precision, or on GPUs, kernels that depend on
the batch shape can flip near-ties).

Every sampling setting is explicit: for the duration of a call the model's own
`generation_config` (a checkpoint's generation_config.json: top_k, repetition_penalty, ...) is
replaced by a blank one, so what the caller records is exactly what ran.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterator, Sequence

import torch
from transformers import DynamicCache, GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.cache_utils import DynamicLayer

from .rows import Output, finish
from .sampling import Sampling
from .stepper import cache_kwarg, hf_model as _hf_model, model_device
from .stops import StopRule


class StopOnSequences(StoppingCriteria):
    """Per row: done at an EOS token or when the decoded tail of the generated text holds a stop
    sequence (the completion is matched as if it started on a new line, see stops.py). Only the last
    `longest stop + 1` tokens of unfinished rows are decoded at each step."""

    def __init__(self, tokenizer, rule: StopRule | None, prompt_len: int, batch: int, eos_ids: Sequence[int]):
        self.tokenizer, self.rule, self.prompt_len = tokenizer, rule, prompt_len
        self.sequences = rule.sequences if rule else ()
        self.window = (rule.longest + 1) if rule else 0
        self.eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)
        self.done = torch.zeros(batch, dtype=torch.bool)
        self.length = [0] * batch  # generated tokens kept per row (set when the row finishes)
        self.reason = ["length"] * batch

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        gen = input_ids[:, self.prompt_len:]
        n = gen.shape[1]
        last = gen[:, -1].cpu()
        if self.eos.numel():
            hit = torch.isin(last, self.eos) & ~self.done
            for r in hit.nonzero().flatten().tolist():
                self.done[r], self.length[r], self.reason[r] = True, n, "eos"
        if self.sequences:
            rows = (~self.done).nonzero().flatten().tolist()
            if rows:
                w = min(self.window, n)
                tails = self.tokenizer.batch_decode(gen[rows, n - w:].tolist(), skip_special_tokens=True,
                                                    clean_up_tokenization_spaces=False)
                for r, tail in zip(rows, tails):
                    if n <= w:
                        tail = "\n" + tail
                    if any(s in tail for s in self.sequences):
                        self.done[r], self.length[r], self.reason[r] = True, n, "stop"
        return self.done.to(input_ids.device)


@contextlib.contextmanager
def explicit_generation_config(model) -> Iterator[None]:
    """Blank generation configs on every generating module of `model` (PEFT wrappers included)."""
    saved = []
    for m in model.modules():
        cfg = getattr(m, "generation_config", None)
        if isinstance(cfg, GenerationConfig):
            saved.append((m, cfg))
            m.generation_config = GenerationConfig()
    try:
        yield
    finally:
        for m, cfg in saved:
            m.generation_config = cfg


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def generation_config(sampling: Sampling, eos_ids: Sequence[int], pad_id: int) -> GenerationConfig:
    kw = dict(max_new_tokens=sampling.max_new_tokens, min_new_tokens=sampling.min_new_tokens or None,
              do_sample=sampling.do_sample, num_beams=1, repetition_penalty=1.0, use_cache=True,
              eos_token_id=list(eos_ids) or None, pad_token_id=pad_id)
    if sampling.do_sample:
        kw.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)  # top_k 0: off (HF's default is 50)
    return GenerationConfig(**kw)


class GrowingLayer(DynamicLayer):
    """A DynamicLayer that stores keys/values in a buffer reserved for `reserve` positions (grown by
    doubling past it): appending writes in place, and `keys`/`values` are views of the buffer.
    Anything that replaces `keys`/`values` from outside (batch selection, cropping) becomes the new
    content of a fresh buffer."""

    def __init__(self, reserve: int = 0):
        super().__init__()
        self.reserve = reserve
        self._kbuf = self._vbuf = self._kview = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys, values = self.keys, self.values
        n = keys.shape[-2] if keys is not None and keys.dim() == key_states.dim() else 0
        t = key_states.shape[-2]
        if self._kbuf is None or keys is not self._kview or n + t > self._kbuf.shape[-2]:
            cap = self.reserve if n + t <= self.reserve else 2 * (n + t)
            kbuf = key_states.new_empty((*key_states.shape[:-2], cap, key_states.shape[-1]))
            vbuf = value_states.new_empty((*value_states.shape[:-2], cap, value_states.shape[-1]))
            if n:
                kbuf[..., :n, :] = keys
                vbuf[..., :n, :] = values
            self._kbuf, self._vbuf = kbuf, vbuf
        self._kbuf[..., n:n + t, :] = key_states
        self._vbuf[..., n:n + t, :] = value_states
        self.keys = self._kview = self._kbuf[..., :n + t, :]
        self.values = self._vbuf[..., :n + t, :]
        return self.keys, self.values


def growing_cache(model, reserve: int) -> DynamicCache:
    """The model's dynamic cache with its full-attention layers preallocated for `reserve` positions."""
    cache = DynamicCache(config=model.config)
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            cache.layers[i] = GrowingLayer(reserve)
    return cache


def prefill_rows(model, prompts: Sequence[Sequence[int]], width: int, cache: DynamicCache, kw: str) -> None:
    """Fill `cache` with the keys/values of every prompt but its last token, computed one prompt at a
    time and left-padded to `width - 1` positions (padding positions hold zeros and are masked)."""
    device = model_device(model)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(_hf_model(model).forward).parameters else {}
    rows, seen = [], {}
    for p in prompts:
        key = tuple(p)
        if len(p) > 1 and key not in seen:  # the n samples of a task share one prefill
            row = DynamicCache(config=model.config)
            model(input_ids=torch.tensor([list(p[:-1])], device=device), use_cache=True, **extra, **{kw: row})
            seen[key] = [(layer.keys, layer.values) for layer in row.layers]
        rows.append(seen.get(key))
    template = next(r for r in rows if r is not None)
    for layer_idx, (k0, v0) in enumerate(template):
        ks, vs = [], []
        for p, r in zip(prompts, rows):
            if r is None:
                ks.append(k0.new_zeros((1, k0.shape[1], width - 1, k0.shape[3])))
                vs.append(v0.new_zeros((1, v0.shape[1], width - 1, v0.shape[3])))
            else:
                k, v = r[layer_idx]
                ks.append(torch.nn.functional.pad(k, (0, 0, width - len(p), 0)))
                vs.append(torch.nn.functional.pad(v, (0, 0, width - len(p), 0)))
        cache.update(torch.cat(ks), torch.cat(vs), layer_idx)


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], sampling: Sampling, rule: StopRule | None,
                   eos_ids: Sequence[int], pad_id: int, seed: int | None = None, prefill: str = "auto") -> list[Output]:
    """Complete a batch of token-id prompts (one call of `generate`; rows of any length).
    prefill: "rows" (one prompt at a time), "batch" (the padded batch at once) or "auto" (rows on CPU)."""
    device = model_device(model)
    ids, mask = left_pad(prompts, pad_id, device)
    width = ids.shape[1]
    crit = StopOnSequences(tokenizer, rule, width, len(prompts), eos_ids)
    kw = cache_kwarg(model)
    cache = growing_cache(model, width + sampling.max_new_tokens)
    if prefill == "auto":
        prefill = "rows" if device.type == "cpu" else "batch"
    if prefill == "rows" and width > 1 and all(isinstance(layer, GrowingLayer) for layer in cache.layers):
        # (sliding-window layers keep only their window: those models are prefilled as a batch)
        prefill_rows(model, prompts, width, cache, kw)
    if seed is not None:
        torch.manual_seed(seed)
    with explicit_generation_config(model):
        out = model.generate(input_ids=ids, attention_mask=mask,
                             generation_config=generation_config(sampling, eos_ids, pad_id),
                             stopping_criteria=StoppingCriteriaList([crit]), **{kw: cache})
    gen = out[:, ids.shape[1]:].cpu().tolist()
    return [finish(tokenizer, row[:crit.length[r] if crit.done[r] else len(row)], crit.reason[r], rule)
            for r, row in enumerate(gen)]
