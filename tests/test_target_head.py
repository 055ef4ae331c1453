"""The LM head and cross-entropy on target positions only (losses/target_head.py) against the full-logits
loss: the same per-task sums and the same gradients, in fp32 exactly (up to float rounding), under bf16
autocast within bf16 rounding; trainable heads, empty batches and a second backward (DAGG's saliency)."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY
from mftcoder_pp.config import from_dict
from mftcoder_pp.losses.focal import focal_alignment_loss, mean_target_prob, mean_target_prob_tokens
from mftcoder_pp.losses.target_head import logits_scores, target_scores
from mftcoder_pp.losses.tokens import per_task_token_losses, task_stats, weighted_task_loss
from mftcoder_pp.model.load import load_tokenizer
from mftcoder_pp.train.batching import collate_padded
from mftcoder_pp.train.config import TrainConfig
from mftcoder_pp.train.dataset import build_corpus
from mftcoder_pp.train.fastpath import build_fast_path
from mftcoder_pp.train.objective import Objective
from mftcoder_pp.train.setup import build_model
from mftcoder_pp.train.terms import Step

K, B, T, H, V = 3, 4, 17, 24, 97


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[:, :6] = -100  # prompt
    labels[1, 12:] = -100  # padding
    labels[3, :] = -100  # a row without targets
    token_task = torch.tensor([0, 2, 1, 2])[:, None].expand(B, T).clone()
    head = torch.nn.Linear(H, V, bias=False)
    torch.nn.init.normal_(head.weight, std=0.5, generator=g)
    head.weight.requires_grad_(False)
    return hidden, labels, token_task, head


def _loss(stats, weights):
    return weighted_task_loss(stats, weights, stats.token_count)


@pytest.mark.parametrize("chunk", [1, 5, 128])
def test_target_rows_equal_full_cross_entropy_fp32(chunk):
    hidden, labels, token_task, head = _batch()
    weights = torch.tensor([0.5, 0.2, 0.3])
    ref = per_task_token_losses(head(hidden), labels, token_task, K, with_entropy=True)
    (g_ref,) = torch.autograd.grad(_loss(ref, weights), hidden)
    got = task_stats(target_scores(head, hidden, labels, token_task, chunk=chunk, with_entropy=True), K)
    (g_got,) = torch.autograd.grad(_loss(got, weights), hidden)
    assert torch.equal(got.token_count, ref.token_count) and torch.equal(got.correct, ref.correct)
    torch.testing.assert_close(got.loss_sum, ref.loss_sum, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(got.entropy_sum, ref.entropy_sum, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-5, atol=1e-7)
    assert g_got[3].abs().max() == 0 and g_got[:, -1].abs().max() == 0  # no target predicted there


def test_bf16_autocast_matches_the_bf16_logits_loss():
    hidden, labels, token_task, head = _batch(1)
    weights = torch.tensor([1.0, 1.0, 1.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = per_task_token_losses(head(hidden), labels, token_task, K)
        got = task_stats(target_scores(head, hidden, labels, token_task, chunk=4), K)
    torch.testing.assert_close(got.loss_sum, ref.loss_sum, rtol=1e-6, atol=1e-5)  # same bf16 logits, fp32 loss
    (g_ref,) = torch.autograd.grad(_loss(ref, weights), hidden)
    (g_got,) = torch.autograd.grad(_loss(got, weights), hidden)
    cos = torch.nn.functional.cosine_similarity(g_got.flatten(), g_ref.flatten(), dim=0)
    assert cos > 0.9999  # bf16 rounding of the logits' gradient, taken at another point of the sum
    torch.testing.assert_close(g_got, g_ref, rtol=0.02, atol=2e-3 * g_ref.abs().max().item())
    head.weight.requires_grad_(True)  # the module path under autocast: entropy and sums stay float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = target_scores(head, hidden, labels, token_task, chunk=4, with_entropy=True)
        stats = task_stats(scores, K)
    assert scores.logp.dtype == scores.entropy.dtype == torch.float32
    torch.testing.assert_close(stats.loss_sum, ref.loss_sum, rtol=1e-6, atol=1e-5)


def test_second_backward_reuses_the_pass():
    """DAGG differentiates the task loss once for its saliency (retain_graph), then the total backward."""
    hidden, labels, token_task, head = _batch(2)
    scores = target_scores(head, hidden, labels, token_task, chunk=3)
    loss = -scores.logp.sum()
    (first,) = torch.autograd.grad(loss, hidden, retain_graph=True)
    loss.backward()
    torch.testing.assert_close(hidden.grad, first)


def test_trainable_or_wrapped_head_goes_through_the_module():
    hidden, labels, token_task, head = _batch(3)
    head.weight.requires_grad_(True)
    ref = per_task_token_losses(head(hidden), labels, token_task, K)
    ref.loss_sum.sum().backward()
    g_w, g_h = head.weight.grad.clone(), hidden.grad.clone()
    head.weight.grad = hidden.grad = None
    got = task_stats(target_scores(head, hidden, labels, token_task, chunk=4), K)
    got.loss_sum.sum().backward()
    torch.testing.assert_close(got.loss_sum, ref.loss_sum, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(head.weight.grad, g_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hidden.grad, g_h, rtol=1e-5, atol=1e-7)


def test_no_targets_gives_zero_loss_with_graph():
    hidden, labels, token_task, head = _batch(4)
    labels[:] = -100
    stats = task_stats(target_scores(head, hidden, labels, token_task), K)
    assert float(stats.loss_sum.sum()) == 0 and int(stats.token_count.sum()) == 0
    stats.loss_sum.sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().max() == 0


def test_focal_from_the_shared_pass_equals_the_logits_computation():
    hidden, labels, token_task, head = _batch(5)
    task_ids = token_task[:, 0]
    ema, alpha = torch.tensor([0.1, 0.5, 0.3]), torch.tensor([0.2, 0.3, 0.5])
    p_ref, present_ref = mean_target_prob(head(hidden), labels, task_ids, K)
    ref = focal_alignment_loss(p_ref, ema, alpha, present_ref, beta=2.0)
    (g_ref,) = torch.autograd.grad(ref, hidden)
    scores = target_scores(head, hidden, labels, token_task, chunk=4)
    p, present = mean_target_prob_tokens(scores.logp, scores.task, K)
    got = focal_alignment_loss(p, ema, alpha, present, beta=2.0)
    (g_got,) = torch.autograd.grad(got, hidden)
    assert torch.equal(present, present_ref)
    torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-5, atol=1e-8)


def test_logits_scores_are_the_same_scores():
    hidden, labels, token_task, head = _batch(6)
    a = target_scores(head, hidden, labels, token_task, with_entropy=True)
    b = logits_scores(head(hidden), labels, token_task, with_entropy=True)
    torch.testing.assert_close(a.logp, b.logp, rtol=1e-6, atol=1e-6)
    assert torch.equal(a.hits, b.hits) and torch.equal(a.task, b.task)
    torch.testing.assert_close(a.entropy, b.entropy, rtol=1e-6, atol=1e-5)


def test_objective_with_the_target_head_equals_full_logits(tiny_workspace, tmp_path):
    """A LoRA model (vocabulary adapters on: the head is PEFT's trainable-token wrapper, the module path)
    and plain LoRA (a frozen nn.Linear head, the precomputed-gradient path): same task loss, same grads."""
    tok = load_tokenizer(tiny_workspace["tokenizer"])
    for vocab in (False, True):
        cfg = from_dict(TrainConfig, {
            "out": str(tmp_path / "o"), "data": {"prepared": [str(tiny_workspace["prepared"])], "max_length": 160},
            "model": {"tokenizer": str(tiny_workspace["tokenizer"]), "tiny": TINY},
            "adapter": {"kind": "lora", "vocabulary_adapters": vocab, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
            "mixing": {"strategy": "plain"}, "optim": {"per_task": False}})
        corpus = build_corpus(cfg.data.prepared, tok, max_length=160, stage="sft")
        examples = [ex for t in corpus.tasks for ex in corpus.train[t][:2]]
        batch = collate_padded(examples, tok.pad_token_id)
        counts = torch.zeros(len(corpus.tasks))
        for ex in examples:
            counts[ex.task] += ex.n_targets
        weights = counts / counts.sum()
        grads, losses = [], []
        for fast_on in (False, True):
            torch.manual_seed(0)
            model, _ = build_model(cfg, tok)
            fast = build_fast_path(cfg, model, cuda=False) if fast_on else None
            obj = Objective(cfg.modules, len(corpus.tasks), model, "cpu", with_entropy=False, fast=fast)
            loss, _, _, _ = obj.micro_loss(model, batch, Step(0, torch.zeros(len(corpus.tasks))), weights, counts,
                                           lambda: torch.autocast("cpu", enabled=False))
            loss.backward()
            losses.append(loss.detach())
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-6)
        assert grads[0].keys() == grads[1].keys() and grads[0]
        for name in grads[0]:
            torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-7, msg=name)


def test_token_weighted_accumulation_stays_exact():
    """Two micro-batches normalised by the whole step's per-task counts give the one-batch gradient."""
    hidden, labels, token_task, head = _batch(7)
    weights = torch.tensor([0.2, 0.5, 0.3])
    whole = task_stats(target_scores(head, hidden, labels, token_task, chunk=3), K)
    (g_whole,) = torch.autograd.grad(weighted_task_loss(whole, weights, whole.token_count), hidden)
    counts = whole.token_count
    total = 0
    for rows in (slice(0, 2), slice(2, 4)):
        part = task_stats(target_scores(head, hidden[rows], labels[rows], token_task[rows], chunk=3), K)
        total = total + weighted_task_loss(part, weights, counts)
    (g_parts,) = torch.autograd.grad(total, hidden)
    torch.testing.assert_close(g_parts, g_whole, rtol=1e-6, atol=1e-8)
