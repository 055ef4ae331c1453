"""Focal alignment loss: known values, shifting, absent tasks, gradient paths, EMA arithmetic and state."""

import math

import pytest
import torch

from mftcoder_pp.losses.focal import (
    TaskAccuracyEMA,
    focal_alignment_loss,
    mean_target_prob,
    target_logprobs,
)


def test_known_value_single_task():
    loss = focal_alignment_loss(
        torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([0.2]), torch.tensor([True]), beta=2.0
    )
    assert loss.item() == pytest.approx(0.2 * 0.25 * math.log(2), rel=1e-6)


def test_mean_over_present_tasks_absent_contribute_nothing():
    p = torch.tensor([0.5, 0.25, 0.9])
    ema = torch.tensor([0.5, 0.0, 0.3])
    alpha = torch.tensor([0.2, 0.5, 0.3])
    present = torch.tensor([True, True, False])
    loss = focal_alignment_loss(p, ema, alpha, present, beta=2.0)
    t0 = 0.2 * 0.25 * math.log(2)
    t1 = 0.5 * 1.0 * math.log(4)
    assert loss.item() == pytest.approx((t0 + t1) / 2, rel=1e-6)
    # changing an absent task's numbers changes nothing
    p2 = p.clone()
    p2[2] = 1e-4
    assert focal_alignment_loss(p2, ema, alpha, present, beta=2.0).item() == pytest.approx(loss.item())
    # no task present: zero
    assert focal_alignment_loss(p, ema, alpha, torch.zeros(3, dtype=torch.bool), beta=2.0).item() == 0.0


def test_mean_target_prob_shifts_and_ignores():
    # V = 3, T = 3. Position t predicts labels[t+1]; labels[0] is never a target.
    logits = torch.log(torch.tensor([
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
        [[0.5, 0.25, 0.25], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]],
    ]))
    labels = torch.tensor([[-100, 0, 1], [-100, 2, -100]])
    task_ids = torch.tensor([1, 0])
    probs, present = mean_target_prob(logits, labels, task_ids, num_tasks=3)
    assert present.tolist() == [True, True, False]
    # task 1 (sample 0): P(0 at t=0)=0.7, P(1 at t=1)=0.8 -> 0.75; task 0 (sample 1): P(2 at t=0)=0.25
    assert probs[1].item() == pytest.approx(0.75, rel=1e-5)
    assert probs[0].item() == pytest.approx(0.25, rel=1e-5)
    assert probs[2].item() == 0.0
    logp, valid = target_logprobs(logits, labels)
    assert logp.shape == valid.shape == (2, 2)
    assert valid.tolist() == [[True, True], [True, False]]


def test_two_samples_same_task_pool_tokens():
    logits = torch.zeros(2, 3, 4)  # uniform: every target prob = 1/4
    labels = torch.tensor([[-100, 1, 2], [-100, 3, -100]])
    probs, present = mean_target_prob(logits, labels, torch.tensor([0, 0]), num_tasks=2)
    assert probs[0].item() == pytest.approx(0.25)
    assert present.tolist() == [True, False]


def test_gradient_flows_to_logits_not_to_ema_or_alpha():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7, requires_grad=True)
    labels = torch.randint(0, 7, (3, 5))
    labels[:, :2] = -100
    task_ids = torch.tensor([0, 1, 0])
    ema = torch.tensor([0.2, 0.6], requires_grad=True)
    alpha = torch.tensor([0.7, 0.3], requires_grad=True)
    p, present = mean_target_prob(logits, labels, task_ids, 2)
    loss = focal_alignment_loss(p, ema, alpha, present, beta=2.0)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert ema.grad is None and alpha.grad is None
    # ignored positions get no gradient (labels[:, :2] ignored -> logits[:, :1] predict ignored labels[:, 1])
    assert logits.grad[:, 0].abs().sum() == 0
    # the last position predicts nothing
    assert logits.grad[:, -1].abs().sum() == 0


def test_low_precision_logits_upcast():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    labels = torch.randint(0, 9, (2, 4))
    p32, _ = mean_target_prob(logits, labels, torch.tensor([0, 1]), 2)
    p16, _ = mean_target_prob(logits.bfloat16(), labels, torch.tensor([0, 1]), 2)
    assert p16.dtype == torch.float32
    assert torch.allclose(p16, p32, atol=2e-2)


def test_ema_update_arithmetic_and_state_round_trip():
    ema = TaskAccuracyEMA(3, decay=0.9)
    assert ema.value.tolist() == [0.0, 0.0, 0.0]
    ema.update(1, 0.5)
    assert ema.value[1].item() == pytest.approx(0.05)
    ema.update([1, 2], [1.0, 0.2])
    assert ema.value[1].item() == pytest.approx(0.9 * 0.05 + 0.1 * 1.0)
    assert ema.value[2].item() == pytest.approx(0.02)
    ema.update(torch.tensor([0, 0]), torch.tensor([1.0, 1.0]))  # repeated ids applied in order
    assert ema.value[0].item() == pytest.approx(0.9 * 0.1 + 0.1)
    ema.update_present(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([False, False, True]))
    assert ema.value[2].item() == pytest.approx(0.9 * 0.02 + 0.1)
    assert ema.value.requires_grad is False

    state = ema.state_dict()
    other = TaskAccuracyEMA(3, decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.9 and torch.equal(other.value, ema.value)
    ema.update(1, 0.3)
    other.update(1, 0.3)
    assert torch.equal(other.value, ema.value)
    with pytest.raises(ValueError):
        TaskAccuracyEMA(4, decay=0.9).load_state_dict(state)
    with pytest.raises(IndexError):
        ema.update(5, 0.1)


def test_early_focal_weight_is_high():
    ema = TaskAccuracyEMA(2, decay=0.9)
    p = torch.tensor([0.5, 0.5])
    alpha = torch.tensor([0.5, 0.5])
    present = torch.tensor([True, True])
    early = focal_alignment_loss(p, ema.value, alpha, present, beta=2.0).item()
    ema.update([0, 1], [0.9, 0.9])
    later = focal_alignment_loss(p, ema.value, alpha, present, beta=2.0).item()
    assert early == pytest.approx(0.5 * math.log(2)) and later < early
