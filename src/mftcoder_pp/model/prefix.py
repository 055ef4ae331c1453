"""The frozen prefix: the decoder layers below the lowest one that trains, run once per example, without
autograd, and optionally cached.

With LoRA on the top k layers only ("LoRA (6L)") or HMD-Fusion's branches on the top layers alone, nothing
below them trains: autograd never goes there (no parameter there requires a gradient), but every step still
runs their forward. Their output for an example never changes during a run (frozen weights, no dropout),
so it can be computed once and reused in later epochs, and (on disk) by the other rows and seeds of an
experiment that share the base model.

The prefix of an example is computed on that example alone (batch 1, no padding), under no_grad and in the
run's autocast. So a cached state is bit-identical to a freshly computed one, whatever batch the example
lands in later: the cached and uncached runs give the same losses. Against the plain batched forward the
difference is float rounding (other matmul shapes, no padding mask), checked by the tests.

The training forward then feeds the states (B, T, H) as `inputs_embeds` to the model while the prefix layers
are swapped for pass-throughs (`FrozenPrefix.skipping`): the model computes its mask, rotary embedding and
the trained layers as usual, and nothing else changes (PEFT, HMD-Fusion, DDP, attention capture). The
pass-throughs make `output_hidden_states` entries 0..k-1 meaningless: `hidden_state_ok` says which
entries a caller may read.

Refused (the caller runs the plain forward and says why, `prefix_blocker`): a trainable parameter below the
layers (vocabulary adapters, full fine-tuning), dropout inside the prefix (its output would be random),
packed rows (several examples in one row).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..modules.layers import find_decoder_layers
from .trunk import base_model

DROPOUT_CONFIG_KEYS = ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                       "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout")


def lowest_trained_layer(model: nn.Module) -> int:
    """Index of the lowest decoder layer holding a trainable parameter; 0 when something below the layers
    trains (embedding rows); the number of layers when only the final norm or the LM head train."""
    base = base_model(model)
    layers = find_decoder_layers(model)
    owner = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    above = {id(p) for m in (base.get_output_embeddings(), getattr(base.get_decoder(), "norm", None)) if m is not None
             for p in m.parameters()}
    below = {id(p) for p in base.get_input_embeddings().parameters()}  # a tied head's rows are these too
    lowest = len(layers)
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in below:
            return 0
        if id(p) in owner:
            lowest = min(lowest, owner[id(p)])
        elif id(p) not in above:
            return 0
    return lowest


def prefix_blocker(model: nn.Module, k: int) -> str | None:
    """Why the frozen prefix of `k` layers cannot be used, or None."""
    if k == 0:
        return "every decoder layer trains (or something below them does: embedding rows, full fine-tuning)"
    conf = base_model(model).config
    for key in DROPOUT_CONFIG_KEYS:
        value = getattr(conf, key, 0.0)
        if isinstance(value, float) and value > 0:
            return f"the model's config sets {key}={value}: the prefix's output would be random in training"
    layers = find_decoder_layers(model)
    for i in range(k):
        for name, m in layers[i].named_modules():
            if isinstance(m, nn.Dropout) and m.p > 0:
                return f"layer {i} has dropout ({name}, p={m.p})"
    return None


class _PassThrough(nn.Module):
    """Stands in for a prefix layer during the training forward: its input is already the prefix's output."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class PrefixCache:
    """Prefix states per example: in memory up to `memory_bytes`, and on disk under `directory/fingerprint`
    when a directory is given (shared by the runs whose fingerprint matches: same prefix weights, layer count,
    precision and attention settings, library versions)."""

    def __init__(self, memory_bytes: int, directory: str | os.PathLike | None = None, fingerprint: str = ""):
        self.memory_bytes, self.used = int(memory_bytes), 0
        self.memory: dict[str, torch.Tensor] = {}
        self.directory = Path(directory) / fingerprint if directory else None
        self.hits = self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        state = self.memory.get(key)
        if state is None and self.directory is not None:
            path = self._path(key)
            if path.is_file():
                from safetensors.torch import load_file

                state = load_file(str(path))["state"]
                self._remember(key, state)
        if state is None:
            self.misses += 1
        else:
            self.hits += 1
        return state

    def put(self, key: str, state: torch.Tensor) -> None:
        self._remember(key, state)
        if self.directory is not None:
            from safetensors.torch import save_file

            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # another run may write the same key
            os.close(fd)
            save_file({"state": state.contiguous()}, tmp)
            os.replace(tmp, path)

    def _remember(self, key: str, state: torch.Tensor) -> None:
        size = state.numel() * state.element_size()
        if self.used + size <= self.memory_bytes:
            self.memory[key] = state
            self.used += size

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"


def example_key(ids: torch.Tensor) -> str:
    return hashlib.blake2b(ids.detach().cpu().to(torch.int64).numpy().tobytes(), digest_size=16).hexdigest()


class FrozenPrefix:
    """The bottom `k` decoder layers of `model` (unwrapped: PEFT allowed, not DDP), run per example."""

    def __init__(self, model: nn.Module, k: int, cache: PrefixCache | None = None):
        self.decoder = base_model(model).get_decoder()
        self.layers = find_decoder_layers(model)
        if not 0 < k <= len(self.layers):
            raise ValueError(f"frozen prefix of {k} layers in a model of {len(self.layers)}")
        self.k, self.cache = k, cache

    def hidden_state_ok(self, index: int) -> bool:
        """Whether entry `index` of `output_hidden_states` (0 = embeddings, negative from the end) is real."""
        n = len(self.layers) + 1
        return (index if index >= 0 else n + index) >= self.k

    @torch.no_grad()
    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) output of the prefix for right-padded rows (zeros on padding), each row computed alone."""
        lengths = attention_mask.sum(dim=1).tolist()
        rows = []
        for i, n in enumerate(lengths):
            ids = input_ids[i, :int(n)]
            key = example_key(ids) if self.cache is not None else ""
            state = self.cache.get(key) if self.cache is not None else None
            if state is None:
                state = self._compute(ids)
                if self.cache is not None:
                    self.cache.put(key, state)
            rows.append(state.to(input_ids.device))
        out = rows[0].new_zeros(input_ids.shape[0], input_ids.shape[1], rows[0].shape[-1])  # (B, T, H)
        for i, state in enumerate(rows):
            out[i, :state.shape[0]] = state
        return out

    def _compute(self, ids: torch.Tensor) -> torch.Tensor:
        """The output of layer k-1 for one example (n,), the layers above swapped out."""
        kept: list[torch.Tensor] = []
        handle = self.layers[self.k - 1].register_forward_hook(
            lambda m, a, out: kept.append(out[0] if isinstance(out, (tuple, list)) else out))
        try:
            with self._swapped(range(self.k, len(self.layers))):
                self.decoder(input_ids=ids[None], use_cache=False)
        finally:
            handle.remove()
        return kept[0][0].clone()  # (n, H)

    @contextlib.contextmanager
    def skipping(self) -> Iterator[None]:
        """Within the block the prefix layers pass their input through: feed `states` as inputs_embeds."""
        with self._swapped(range(self.k)):
            yield

    @contextlib.contextmanager
    def _swapped(self, indices) -> Iterator[None]:
        saved = {i: self.layers[i] for i in indices}
        try:
            for i in saved:
                self.layers[i] = _PassThrough()
            yield
        finally:
            for i, layer in saved.items():
                self.layers[i] = layer


def prefix_fingerprint(model: nn.Module, k: int, context: str) -> str:
    """A digest of what the prefix's output depends on: the decoder's weights and buffers below layer k,
    the model class, `context` (precision, attention settings) and the library versions."""
    import transformers

    decoder = base_model(model).get_decoder()
    top = {f"layers.{i}." for i in range(k, len(find_decoder_layers(model)))}
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(base_model(model)).__name__}|{k}|{context}|{torch.__version__}|{transformers.__version__}".encode())
    for name, t in sorted(decoder.state_dict(keep_vars=False).items()):
        if name.startswith("norm.") or any(name.startswith(p) for p in top):
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
