"""Task scheduling (uniform / temperature / ATDS) and mixed-batch losses (per-task CE, data-balanced, CoBa)."""

import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from mftcoder_pp.data.sampling import temperature_probabilities
from mftcoder_pp.losses.balance import (CoBa, TaskStats, data_balanced_loss, per_task_token_losses,
                                        token_mean_loss, weighted_task_loss)
from mftcoder_pp.train.mixing import TaskScheduler, zscore

SIZES = {"synthesis/python": 8000, "synthesis/java": 2000, "synthesis/rust": 500, "repair/go": 1200}


def val(x):
    return float(x.detach())


def roundtrip(d):
    """Through JSON, as a checkpoint would store it."""
    return json.loads(json.dumps(d))


# -- TaskScheduler --------------------------------------------------------------------------------

def test_temperature_and_uniform_probabilities():
    s = TaskScheduler(SIZES, "temperature", temperature=2.0)
    assert s.tasks == sorted(SIZES)
    expected = temperature_probabilities(SIZES, 2.0)
    assert s.probabilities() == pytest.approx(expected)
    default = TaskScheduler(SIZES, "temperature")
    assert default.probabilities() == pytest.approx(temperature_probabilities(SIZES))
    u = TaskScheduler(SIZES, "uniform")
    assert u.probabilities() == pytest.approx({t: 0.25 for t in SIZES})
    assert not s.step_done(50) and not u.step_done(50)  # fixed strategies never refresh


def test_draws_follow_pi_and_are_deterministic():
    s = TaskScheduler(SIZES, "temperature", seed=7)
    n = 20000
    counts = Counter(s.next_task() for _ in range(n))
    p = s.probabilities()
    chi2 = sum((counts[t] - n * p[t]) ** 2 / (n * p[t]) for t in SIZES)
    assert chi2 < 16.3  # chi-square, 3 dof, p = 0.001
    for t in SIZES:
        assert counts[t] / n == pytest.approx(p[t], abs=0.015)
    a = TaskScheduler(SIZES, "atds", seed=3)
    b = TaskScheduler(SIZES, "atds", seed=3)
    c = TaskScheduler(SIZES, "atds", seed=4)
    seq_a = [a.next_task() for _ in range(200)]
    assert seq_a == [b.next_task() for _ in range(200)]
    assert seq_a != [c.next_task() for _ in range(200)]


def test_empty_task_never_drawn_and_min_prob_floor():
    sizes = {"a": 100000, "b": 10, "c": 0}
    s = TaskScheduler(sizes, "temperature", temperature=1.0, seed=0)
    assert s.probabilities()["c"] == 0.0
    assert "c" not in {s.next_task() for _ in range(2000)}
    f = TaskScheduler(sizes, "temperature", temperature=1.0, min_prob=0.1)
    p = f.probabilities()
    assert p["b"] >= 0.1 - 1e-12 and p["c"] == 0.0 and sum(p.values()) == pytest.approx(1.0)
    assert TaskScheduler(sizes, "uniform").probabilities() == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})
    with pytest.raises(ValueError):
        TaskScheduler(sizes, "temperature", min_prob=0.6)
    with pytest.raises(ValueError):
        TaskScheduler(sizes, "bogus")


def test_subset_construction_for_curriculum_phase():
    phase1 = {t: n for t, n in SIZES.items() if t.endswith("/python")}
    s = TaskScheduler(phase1, "atds", refresh_every=2)
    assert s.tasks == ["synthesis/python"] and s.probabilities() == {"synthesis/python": 1.0}
    s.observe("synthesis/python", 1.0, 2.0)
    assert s.step_done(2) and s.probabilities() == pytest.approx({"synthesis/python": 1.0})
    assert s.next_task() == "synthesis/python"


def test_zscore_unseen_tasks_get_the_mean():
    z = zscore({"a": 1.0, "b": 3.0, "c": None}, ["a", "b", "c"])
    assert z == pytest.approx({"a": -1.0, "b": 1.0, "c": 0.0})
    assert zscore({"a": 2.0, "b": 2.0}, ["a", "b"]) == {"a": 0.0, "b": 0.0}


def _feed(s, task, losses, entropy):
    for loss in losses:
        s.observe(task, loss, entropy)


def test_atds_starts_at_prior_and_refreshes_every_k_steps():
    s = TaskScheduler(SIZES, "atds", refresh_every=10, seed=1)
    prior = temperature_probabilities(SIZES)
    assert s.probabilities() == pytest.approx(prior)
    # Equal statistics everywhere: the refreshed π is still the prior (log-prior offset).
    for t in SIZES:
        _feed(s, t, [2.0, 1.9, 1.8], 1.5)
    assert s.step_done(10) and s.probabilities() == pytest.approx(prior)

    # rust: high entropy and a falling loss; java: low entropy and a rising loss; others flat.
    _feed(s, "synthesis/rust", [1.7, 1.4, 1.1, 0.9], 4.0)
    _feed(s, "synthesis/java", [2.0, 2.2, 2.4, 2.6], 0.5)
    _feed(s, "synthesis/python", [1.8, 1.8, 1.8, 1.8], 1.5)
    _feed(s, "repair/go", [1.8, 1.8, 1.8, 1.8], 1.5)
    before = s.probabilities()
    for step in range(11, 20):
        assert not s.step_done(step)
        assert s.probabilities() == before  # constant between refreshes
    assert s.step_done(20)
    after = s.probabilities()
    assert after["synthesis/rust"] > before["synthesis/rust"]
    assert after["synthesis/java"] < before["synthesis/java"]
    assert sum(after.values()) == pytest.approx(1.0)
    assert s.refreshes == 2
    st = s.stats()["synthesis/rust"]
    assert st["velocity"] > 0 and st["n"] == 7
    assert s.stats()["synthesis/java"]["velocity"] < 0


def test_atds_entropy_alone_and_velocity_alone_raise_probability():
    for which in ("entropy", "velocity"):
        s = TaskScheduler({"a": 1000, "b": 1000}, "atds", refresh_every=1)
        for _ in range(5):
            s.observe("a", 2.0 * (0.8 if which == "velocity" else 1.0) ** _, 3.0 if which == "entropy" else 1.0)
            s.observe("b", 2.0, 1.0)
        s.step_done(1)
        assert s.probabilities()["a"] > 0.5


def test_velocity_sign_reverses_which_task_the_velocity_term_favours():
    probs = {}
    for sign in (1, -1):
        s = TaskScheduler({"a": 1000, "b": 1000}, "atds", refresh_every=1, alpha=0.0, velocity_sign=sign)
        for k in range(5):
            s.observe("a", 2.0 * 0.8 ** k, 1.0)  # a's loss falls, b's stays
            s.observe("b", 2.0, 1.0)
        s.step_done(1)
        probs[sign] = s.probabilities()["a"]
    assert probs[1] > 0.5 > probs[-1] and probs[1] == pytest.approx(1 - probs[-1])
    with pytest.raises(ValueError, match="velocity_sign"):
        TaskScheduler({"a": 1}, "atds", velocity_sign=0)


def _run(s, steps, start=1):
    """Simulated training: draw, observe synthetic stats, step; returns draws and π history."""
    draws, pis = [], []
    for step in range(start, start + steps):
        t = s.next_task()
        draws.append(t)
        k = s.tasks.index(t)
        s.observe(t, 2.0 / (1 + 0.01 * step * (k + 1)), 1.0 + 0.3 * k + 0.001 * step)
        s.step_done(step)
        pis.append(s.probabilities())
    return draws, pis


def test_state_dict_roundtrip_reproduces_future():
    a = TaskScheduler(SIZES, "atds", refresh_every=5, seed=11, min_prob=0.02)
    _run(a, 37)
    state = roundtrip(a.state_dict())
    b = TaskScheduler(SIZES, "atds", refresh_every=5, seed=11, min_prob=0.02)
    b.load_state_dict(state)
    assert b.probabilities() == a.probabilities()
    da, pa = _run(a, 100, start=38)
    db, pb = _run(b, 100, start=38)
    assert da == db and pa == pb
    assert len({tuple(p.values()) for p in pa}) > 1  # π did evolve
    with pytest.raises(ValueError):
        TaskScheduler(SIZES, "temperature", seed=11).load_state_dict(state)
    with pytest.raises(ValueError):
        TaskScheduler(SIZES, "atds", refresh_every=6, seed=11, min_prob=0.02).load_state_dict(state)


# -- per-task token losses ------------------------------------------------------------------------

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
    assert val(data_balanced_loss(stats)) == pytest.approx(sum(means) / len(means), rel=1e-5)
    assert val(token_mean_loss(stats)) == pytest.approx(sum(loss) / sum(count), rel=1e-5)
    # The flat token mean equals HF's shifted cross-entropy over the whole batch.
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert val(token_mean_loss(stats)) == pytest.approx(val(ref), rel=1e-5)
    # CoBa weighting: uniform weights reproduce the data-balanced loss; absent tasks are renormalised out.
    assert val(CoBa.weighted_loss(stats, torch.full((k,), 1 / k))) == pytest.approx(val(data_balanced_loss(stats)))
    w = torch.tensor([0.2, 0.7, 0.1])
    expected = (0.2 * means[0] + 0.1 * means[1]) / 0.3
    assert val(weighted_task_loss(stats, w)) == pytest.approx(expected, rel=1e-5)
    # Accumulating two micro-batches' stats = stats of their concatenation.
    l2, y2, t2, _ = _batch(seed=2)
    both = per_task_token_losses(torch.cat([logits, l2]), torch.cat([labels, y2]), torch.cat([task_ids, t2]), k)
    summed = stats + per_task_token_losses(l2, y2, t2, k)
    assert summed.loss_sum.tolist() == pytest.approx(both.loss_sum.tolist(), rel=1e-5)
    assert torch.equal(summed.token_count, both.token_count)


def test_no_target_tokens_gives_zero_loss_with_graph():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    labels = torch.full((2, 4), -100)
    for fn in (data_balanced_loss, token_mean_loss):
        stats = per_task_token_losses(logits, labels, torch.tensor([0, 1]), 2)
        assert stats.token_count.tolist() == [0, 0]
        loss = fn(stats)
        assert val(loss) == 0.0
        loss.backward()


# -- CoBa -----------------------------------------------------------------------------------------

def _curves(t):
    """a converges fast, c converges slowly, b converges like a then diverges from point 20 on."""
    a = 2.0 * math.exp(-0.05 * t)
    c = 2.0 * math.exp(-0.03 * t)
    b = a if t < 20 else 2.0 * math.exp(-1.0) * (1 + 0.03 * (t - 20))
    return {"a": a, "b": b, "c": c}


def test_coba_warmup_uniform_then_balances():
    coba = CoBa(["a", "b", "c"], window=8, temperature=5.0, warmup_points=4)
    for t in range(3):
        coba.observe_validation(_curves(t))
        assert coba.weights() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
        assert not coba.warmed_up
    for t in range(3, 20):
        coba.observe_validation(_curves(t))
        w = coba.weights()
        assert sum(w.values()) == pytest.approx(1.0)
        # RCS while everything converges: the slower task (c) gets more weight.
        assert w["c"] > w["a"] == pytest.approx(w["b"])
    assert coba.warmed_up
    for t in range(20, 34):
        coba.observe_validation(_curves(t))
    w = coba.weights()
    # b's validation loss now rises: DF has dropped and ACS down-weights it.
    assert coba.last["df"] < 0.1
    assert w["b"] < w["a"] and w["b"] < w["c"] and w["b"] < 1 / 3
    assert min(w.values()) >= coba.min_weight - 1e-12
    assert coba.last["slopes"][1] > 0 > coba.last["slopes"][0]


def test_coba_missing_tasks_and_normalisation():
    coba = CoBa(["a", "b"], window=5, warmup_points=2)
    coba.observe_validation({"a": 4.0})              # b missing at the first point
    coba.observe_validation({"a": 2.0, "b": 3.0})    # b's normaliser is its first loss
    assert coba.history == [[1.0, None], [0.5, 1.0]]
    with pytest.raises(KeyError):
        coba.observe_validation({"zz": 1.0})
    w = coba.weights()
    assert sum(w.values()) == pytest.approx(1.0) and all(math.isfinite(v) for v in w.values())


def test_coba_state_roundtrip():
    a = CoBa(["a", "b", "c"], window=6, warmup_points=3)
    for t in range(25):
        a.observe_validation(_curves(t))
    b = CoBa(["a", "b", "c"], window=6, warmup_points=3)
    b.load_state_dict(roundtrip(a.state_dict()))
    assert b.weights() == a.weights()
    for t in range(25, 40):
        a.observe_validation(_curves(t))
        b.observe_validation(_curves(t))
        assert b.weights() == a.weights()
    assert torch.equal(a.weights_tensor(), torch.tensor(list(a.weights().values()), dtype=torch.float32))
    with pytest.raises(ValueError):
        CoBa(["a", "b"]).load_state_dict(roundtrip(a.state_dict()))
