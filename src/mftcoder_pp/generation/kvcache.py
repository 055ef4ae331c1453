"""A KV cache with one preallocated place per decoding slot, for continuous batching.

Every layer holds keys and values in two buffers of shape (slots, kv_heads, capacity, head_dim),
allocated once for the longest prompt + max_new_tokens (+ room for guesses). Slot s keeps its row's positions 0..n_s-1 from
index 0, so rows of different lengths sit side by side without padding in front, and a row that
joins in the middle of a run starts at 0 in its own slot.

A decoding step runs the rows of slots 0..b-1 (the scheduler keeps them contiguous): each row writes
its new keys/values (one token, or a few when it verifies guesses, lookahead.py) at its own positions
n_s, n_s+1, ... (an indexed write, no copy of the cache), and attention reads the view
[:b, :, :max(n)+q] with a mask that hides, per row, the positions past its own. Prompts
are prefilled outside this cache (a fresh DynamicCache, so the model's own causal prefill runs) and
their keys/values copied into their slots (`write`).

It is a transformers `Cache` so the model's attention layers call `update` as with any cache; only
full-attention layers are supported (`supports`): sliding-window or linear-attention layers keep
other state, and such models use the padded decoder (padded.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer


def supports(config) -> bool:
    """Whether every cache layer of a model with this config is a plain full-attention layer."""
    try:
        cache = DynamicCache(config=config)
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


class SlotCache(Cache):
    def __init__(self, num_layers: int, slots: int, capacity: int):
        super().__init__(layers=[DynamicLayer() for _ in range(num_layers)])  # flags only (is_sliding, ...)
        self.slots, self.capacity = slots, capacity
        self.k: list[torch.Tensor | None] = [None] * num_layers  # (slots, kv_heads, capacity, head_dim)
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self._rows: torch.Tensor | None = None  # (b, 1) the slots of this decoding step
        self._pos: torch.Tensor | None = None  # (b, q) where each row writes its q tokens
        self._kv_len = 0

    def _alloc(self, layer: int, like: torch.Tensor) -> None:
        shape = (self.slots, like.shape[1], self.capacity, like.shape[3])
        self.k[layer] = like.new_zeros(shape)
        self.v[layer] = like.new_zeros(shape)

    def write(self, slots: Sequence[int], prefill: Sequence[tuple[torch.Tensor, torch.Tensor]],
              sources: Sequence[int]) -> None:
        """Copy prefilled keys/values into slots: slots[i] gets row sources[i] of the prefill batch.
        prefill: per layer (keys, values), (rows, kv_heads, T, head_dim); positions past a row's
        prompt hold padding, which the decoding mask hides and decoding overwrites."""
        dst = torch.tensor(list(slots), dtype=torch.long, device=prefill[0][0].device)
        src = torch.tensor(list(sources), dtype=torch.long, device=dst.device)
        for layer, (k, v) in enumerate(prefill):
            if self.k[layer] is None:
                self._alloc(layer, k)
            t = k.shape[2]
            self.k[layer][dst, :, :t] = k.index_select(0, src).to(self.k[layer].dtype)
            self.v[layer][dst, :, :t] = v.index_select(0, src).to(self.v[layer].dtype)

    def copy(self, src: int, dst: int, length: int) -> None:
        """Slot dst gets the first `length` positions of slot src (a shared prompt, or a compaction move)."""
        if length <= 0:
            return
        for buf in (*self.k, *self.v):
            if buf is not None:
                buf[dst, :, :length] = buf[src, :, :length]

    def start_step(self, positions: torch.Tensor) -> torch.Tensor:
        """Prepare a decoding step of rows 0..b-1, each writing q tokens at `positions` (b, q);
        returns the attention mask (b, 1, q, kv_len), True where a token may attend (its row's
        cached positions and its own and earlier new tokens)."""
        b = positions.shape[0]
        self._rows = torch.arange(b, device=positions.device)[:, None]  # (b, 1)
        self._pos = positions
        self._kv_len = int(positions.max()) + 1
        span = torch.arange(self._kv_len, device=positions.device)
        return (span[None, None, :] <= positions[:, :, None])[:, None]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """(b, kv_heads, q, head_dim) new keys/values of a decoding step -> the views attention reads."""
        if self._pos is None or key_states.shape[2] != self._pos.shape[1]:
            raise RuntimeError("SlotCache.update outside a decoding step (prompts are prefilled apart)")
        if self.k[layer_idx] is None:  # every prompt so far was one token long
            self._alloc(layer_idx, key_states)
        k, v = self.k[layer_idx], self.v[layer_idx]
        b = key_states.shape[0]
        k[self._rows, :, self._pos] = key_states.transpose(1, 2).to(k.dtype)  # (b, q, kv_heads, head_dim)
        v[self._rows, :, self._pos] = value_states.transpose(1, 2).to(v.dtype)
        return k[:b, :, :self._kv_len], v[:b, :, :self._kv_len]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._kv_len

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return self.capacity
