"""The next token of every row of a decoding step: greedy, or sampled with temperature and top-p.

Sampling draws each row's random number from that row's own generator (seeded from the run seed,
the task and the sample index by the caller), and turns it into a token by inverting the row's
cumulative distribution. So a row's samples depend on its seed and its logits only, not on which
other rows share the step: continuous batching admits rows at times that depend on when others
finish, and with one global generator the samples would change with the batch size.

top-p keeps the smallest set of most probable tokens whose probability reaches top_p (at least one
token); top-k and repetition penalties are not used (every setting is explicit, docs/generate.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    min_new_tokens: int = 0  # > 0 only for benchmarks (EOS suppressed until then)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


def row_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def next_tokens(logits: torch.Tensor, sampling: Sampling, generators: Sequence[torch.Generator | None],
                suppress: torch.Tensor | None = None) -> list[int]:
    """logits (b, V) of the rows' last positions -> b token ids. `suppress` (b, V) bool: tokens a
    row may not take (EOS before min_new_tokens)."""
    scores = logits.float()  # (b, V)
    if suppress is not None:
        scores = scores.masked_fill(suppress, float("-inf"))
    if not sampling.do_sample:
        return scores.argmax(-1).tolist()
    probs = torch.softmax(scores / sampling.temperature, dim=-1)  # (b, V)
    order = None
    if sampling.top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True)
        before = probs.cumsum(-1) - probs  # mass of the more probable tokens
        probs = probs.masked_fill(before >= sampling.top_p, 0.0)  # the first token always stays
    cdf = probs.cumsum(-1)  # (b, V)
    u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators]).to(cdf.device)
    target = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)  # (b, 1)
    idx = torch.searchsorted(cdf, target, right=True).clamp_(max=cdf.shape[1] - 1)  # (b, 1)
    # A draw that lands in a run of zero-probability tokens at the end moves back to the last kept one.
    idx = torch.where(probs.gather(1, idx) > 0, idx, (probs > 0).cumsum(-1).argmax(-1, keepdim=True))
    tokens = idx if order is None else order.gather(1, idx)
    return tokens.squeeze(1).tolist()
