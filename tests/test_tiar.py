"""TIAR: spectral-norm discriminator, alternation schedule, adversarial terms, checkpoint round trip."""

import copy
import math

import pytest
import torch

from mftcoder_pp.modules.tiar import (
    TIAR,
    Discriminator,
    GradReverse,
    TIARSchedule,
    accuracy,
    adversarial_loss,
    discriminator_loss,
    pool_prompt,
)


def _effective_weights(d: Discriminator):
    return [d.fc1.weight, d.fc2.weight]  # parametrized: W / sigma


def test_spectral_norm_bounds_largest_singular_value():
    torch.manual_seed(0)
    d = Discriminator(16, 4, width=32)
    with torch.no_grad():  # make the raw weights large, so the constraint matters
        d.fc1.parametrizations.weight.original.mul_(10.0)
        d.fc2.parametrizations.weight.original.mul_(10.0)
    d.train()
    for _ in range(20):  # power iterations happen on train-mode forwards
        d(torch.randn(8, 16))
    d.eval()
    for w in _effective_weights(d):
        sigma = torch.linalg.matrix_norm(w.detach(), ord=2).item()
        assert sigma <= 1.0 + 1e-2
        assert sigma > 0.9


def test_schedule_phases():
    s = TIARSchedule(period=5)
    phases = [s.phase(i) for i in range(21)]
    assert phases[:5] == ["discriminator"] * 5
    assert phases[5:10] == ["model"] * 5
    assert phases[10:15] == ["discriminator"] * 5
    assert phases[15:20] == ["model"] * 5
    assert phases[20] == "discriminator"
    assert s.adversarial_active(7) and not s.train_discriminator(7)
    assert s.train_discriminator(3) and not s.adversarial_active(3)
    with pytest.raises(ValueError):
        TIARSchedule(0)


def test_pool_prompt_means_over_prompt_tokens():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    pooled = pool_prompt(h, mask)
    assert pooled.shape == (2, 3)
    assert torch.allclose(pooled[0], h[0, :2].mean(0))
    assert torch.allclose(pooled[1], h[1, 1:].mean(0))


def test_uniform_adversarial_loss_zero_at_uniform_positive_otherwise_and_grad_flows():
    assert adversarial_loss(torch.zeros(3, 5), "uniform").abs().item() < 1e-7
    assert adversarial_loss(torch.full((2, 4), 7.0), "uniform").abs().item() < 1e-6
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    val = adversarial_loss(logits, "uniform").item()
    p = torch.softmax(logits, -1)
    expected = (-(math.log(3)) - torch.log(p).mean(-1)).mean().item()  # KL(U || p)
    assert val > 0 and val == pytest.approx(expected, rel=1e-5)

    torch.manual_seed(0)
    d = Discriminator(8, 3, width=16)
    pooled = torch.randn(4, 8, requires_grad=True)
    adversarial_loss(d(pooled), "uniform").backward()
    assert pooled.grad is not None and pooled.grad.abs().sum() > 0


def test_gradient_reversal_flips_sign():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    (GradReverse.apply(x, 0.5) * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)


def test_reversal_mode_gradient_is_negated_ce_gradient():
    torch.manual_seed(0)
    tiar = TIAR(8, 3, width=16, mode="reversal", grl_scale=1.0, lr=1e-4, period=5)
    pooled = torch.randn(6, 8, requires_grad=True)
    task_ids = torch.tensor([0, 1, 2, 0, 1, 2])
    loss, _ = tiar.model_term(pooled, task_ids)
    loss.backward()
    g_rev = pooled.grad.clone()
    pooled.grad = None
    # the model term never touches D's parameters
    assert all(p.grad is None for p in tiar.discriminator.parameters())
    tiar.discriminator.eval()
    discriminator_loss(tiar.discriminator(pooled), task_ids).backward()
    assert torch.allclose(g_rev, -pooled.grad, atol=1e-6)


def _toy_problem(n=64, h=8, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    task_ids = torch.arange(n) % k
    centers = torch.randn(k, h, generator=g) * 3.0
    x = centers[task_ids] + 0.3 * torch.randn(n, h, generator=g)
    return x, task_ids


def test_discriminator_learns_separable_toy_problem():
    torch.manual_seed(0)
    x, y = _toy_problem()
    tiar = TIAR(8, 3, width=32, lr=1e-2, mode="uniform", period=5)
    first = tiar.discriminator_step(x, y)
    for _ in range(40):
        stats = tiar.discriminator_step(x, y)
    tiar.discriminator.eval()
    acc = accuracy(tiar.discriminator(x), y)
    assert acc > 0.9 > 1 / 3
    assert stats["loss"] < first["loss"]


def test_model_term_does_not_change_discriminator():
    torch.manual_seed(0)
    x, y = _toy_problem()
    tiar = TIAR(8, 3, width=16, lr=1e-4, mode="uniform", period=5)
    tiar.discriminator_step(x, y)
    before = copy.deepcopy(tiar.discriminator.state_dict())
    loss, acc = tiar.model_term(x.clone().requires_grad_(), y)
    loss.backward()
    after = tiar.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert 0.0 <= acc <= 1.0


def test_state_dict_round_trip_reproduces_next_step():
    torch.manual_seed(0)
    x, y = _toy_problem()
    a = TIAR(8, 3, width=16, lr=1e-2, mode="uniform", period=5)
    for _ in range(3):
        a.discriminator_step(x, y)
    state = copy.deepcopy(a.state_dict())

    torch.manual_seed(123)  # different init: everything must come from the checkpoint
    b = TIAR(8, 3, width=16, lr=1e-2, mode="uniform", period=5)
    b.load_state_dict(state)

    sa = a.discriminator_step(x, y)
    sb = b.discriminator_step(x, y)
    assert sa == sb
    for (ka, va), (kb, vb) in zip(a.discriminator.state_dict().items(), b.discriminator.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    la, _ = a.model_term(x, y)
    lb, _ = b.model_term(x, y)
    assert torch.equal(la, lb)

    with pytest.raises(ValueError):
        TIAR(8, 4, width=16, lr=1e-4, mode="uniform", period=5).load_state_dict(state)


def test_bad_mode_rejected():
    with pytest.raises(ValueError):
        adversarial_loss(torch.zeros(2, 3), "nope")
    with pytest.raises(ValueError):
        adversarial_loss(torch.zeros(2, 3), "reversal")
    with pytest.raises(ValueError):
        TIAR(8, 3, mode="nope", lr=1e-4, period=5, width=16)
