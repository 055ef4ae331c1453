"""Per-task token losses of mixed batches, and the one task-loss weighting (token mean, MFTCoder's
data-balanced loss, CoBa's weights), against hand computation."""

import pytest
import torch
import torch.nn.functional as F

from mftcoder_pp.losses.tokens import TaskStats, per_task_token_losses, task_weights, weighted_task_loss


def val(x):
    return float(x.detach())


def task_loss(stats, weighting, coba_weights=None):
    """The task loss of a batch normalised by its own token counts."""
    return weighted_task_loss(stats, task_weights(weighting, stats.token_count, coba_weights))


def _batch(seed=0, b=6, t=9, v=13, k=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=torch.float64).float().requires_grad_(True)
    labels = torch.randint(0, v, (b, t), generator=g)
    drop = torch.rand(b, t, generator=g) < 0.35
    labels[drop] = -100
    labels[2] = -100  # a sample with no target token at all
    task_ids = torch.tensor([0, 2, 2, 0, 2, 0][:b])  # task 1 absent
    return logits, labels, task_ids, k


def _naive(logits, labels, task_ids, k):
    loss, count, correct, ent = [0.0] * k, [0] * k, [0] * k, [0.0] * k
    for i in range(logits.shape[0]):
        for pos in range(logits.shape[1] - 1):
            y = int(labels[i, pos + 1])
            if y == -100:
                continue
            row = logits[i, pos].detach().double()
            logp = torch.log_softmax(row, -1)
            task = int(task_ids[i])
            loss[task] += float(-logp[y])
            count[task] += 1
            correct[task] += int(int(row.argmax()) == y)
            ent[task] += float(-(logp.exp() * logp).sum())
    return loss, count, correct, ent


@pytest.mark.parametrize("chunk", [1 << 26, 20])
def test_per_task_token_losses_match_naive_loop(chunk):
    logits, labels, task_ids, k = _batch()
    stats = per_task_token_losses(logits, labels, task_ids, k, chunk_elements=chunk)
    loss, count, correct, ent = _naive(logits, labels, task_ids, k)
    assert isinstance(stats, TaskStats)
    assert stats.loss_sum.tolist() == pytest.approx(loss, rel=1e-5)
    assert stats.token_count.tolist() == count and stats.token_count.dtype == torch.long
    assert stats.correct.tolist() == correct
    assert stats.entropy_sum.tolist() == pytest.approx(ent, rel=1e-5)
    assert count[1] == 0 and stats.present().tolist() == [True, False, True]
    # (B, 1) task ids, as MFTCoder stores them, give the same result; gradients flow through loss_sum.
    same = per_task_token_losses(logits, labels, task_ids[:, None], k)
    assert torch.equal(same.loss_sum, stats.loss_sum)
    stats.loss_sum.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert logits.grad[:, -1].abs().sum() == 0  # the last position predicts nothing


def test_per_token_task_ids_for_packed_rows():
    logits, labels, task_ids, k = _batch(seed=3)
    per_token = task_ids[:, None].expand_as(labels).clone()
    assert torch.equal(per_task_token_losses(logits, labels, per_token, k).loss_sum,
                       per_task_token_losses(logits, labels, task_ids, k).loss_sum)
    # Two samples packed into row 0: positions >= 5 belong to task 1; targets are accounted by position t + 1.
    per_token[0, 5:] = 1
    stats = per_task_token_losses(logits, labels, per_token, k)
    moved = int((labels[0, 5:] != -100).sum())
    base = per_task_token_losses(logits, labels, task_ids, k)
    assert stats.token_count[1] == moved and stats.token_count.sum() == base.token_count.sum()
    logp = torch.log_softmax(logits[0, 4:-1].detach().double(), -1)
    y = labels[0, 5:]
    expect = float(sum(-logp[j, int(y[j])] for j in range(len(y)) if int(y[j]) != -100))
    assert val(stats.loss_sum[1]) == pytest.approx(expect, rel=1e-5)


def test_losses_equal_hand_computation():
    logits, labels, task_ids, k = _batch(seed=1)
    stats = per_task_token_losses(logits, labels, task_ids, k)
    loss, count, _, _ = _naive(logits, labels, task_ids, k)
    means = [loss[i] / count[i] for i in range(k) if count[i]]
    assert val(task_loss(stats, "data_balanced")) == pytest.approx(sum(means) / len(means), rel=1e-5)
    assert val(task_loss(stats, "token_mean")) == pytest.approx(sum(loss) / sum(count), rel=1e-5)
    # The flat token mean equals HF's shifted cross-entropy over the whole batch.
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert val(task_loss(stats, "token_mean")) == pytest.approx(val(ref), rel=1e-5)
    # CoBa weighting: uniform weights reproduce the data-balanced loss; absent tasks are renormalised out.
    uniform = task_loss(stats, "coba", torch.full((k,), 1 / k))
    assert val(uniform) == pytest.approx(val(task_loss(stats, "data_balanced")))
    w = torch.tensor([0.2, 0.7, 0.1])
    expected = (0.2 * means[0] + 0.1 * means[1]) / 0.3
    assert val(task_loss(stats, "coba", w)) == pytest.approx(expected, rel=1e-5)
    # Accumulating two micro-batches' stats = stats of their concatenation.
    l2, y2, t2, _ = _batch(seed=2)
    both = per_task_token_losses(torch.cat([logits, l2]), torch.cat([labels, y2]), torch.cat([task_ids, t2]), k)
    summed = stats + per_task_token_losses(l2, y2, t2, k)
    assert summed.loss_sum.tolist() == pytest.approx(both.loss_sum.tolist(), rel=1e-5)
    assert torch.equal(summed.token_count, both.token_count)


def test_no_target_tokens_gives_zero_loss_with_graph():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    labels = torch.full((2, 4), -100)
    for weighting in ("data_balanced", "token_mean", "coba"):
        stats = per_task_token_losses(logits, labels, torch.tensor([0, 1]), 2)
        assert stats.token_count.tolist() == [0, 0]
        loss = task_loss(stats, weighting, torch.tensor([0.5, 0.5]))
        assert val(loss) == 0.0
        loss.backward()


def test_global_counts_normalise_micro_batches_like_one_batch():
    """Two halves of a batch, each normalised by the whole batch's counts, sum to the whole batch's loss:
    the property gradient accumulation relies on."""
    logits, labels, task_ids, k = _batch(seed=4)
    whole = per_task_token_losses(logits, labels, task_ids, k)
    for weighting in ("token_mean", "data_balanced", "coba"):
        w = task_weights(weighting, whole.token_count.float(), torch.tensor([0.5, 0.2, 0.3]))
        halves = sum(weighted_task_loss(per_task_token_losses(logits[s], labels[s], task_ids[s], k), w,
                                        whole.token_count.float()) for s in (slice(0, 3), slice(3, 6)))
        assert val(halves) == pytest.approx(val(weighted_task_loss(whole, w)), rel=1e-5), weighting


def test_accuracy_per_task():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 1] = 5  # predicts 1 at t=0 (target 1: hit)
    logits[0, 1, 0] = 5  # predicts 0 at t=1 (target 2: miss)
    logits[1, 0, 3] = 5  # hit
    labels = torch.tensor([[-100, 1, 2], [-100, 3, -100]])
    stats = per_task_token_losses(logits, labels, torch.tensor([0, 2]), 3)
    assert stats.accuracy().tolist() == [0.5, 0.0, 1.0]
    assert stats.present().tolist() == [True, False, True]


def test_unknown_weighting_is_an_error():
    with pytest.raises(ValueError, match="weighting"):
        task_weights("mean", torch.ones(2))
    with pytest.raises(ValueError, match="CoBa"):
        task_weights("coba", torch.ones(2))
