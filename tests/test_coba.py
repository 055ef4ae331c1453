"""CoBa's convergence-balanced weights: warm-up, balancing, divergence, missing tasks, state."""

import json
import math

import pytest
import torch

from mftcoder_pp.losses.coba import CoBa


def roundtrip(d):
    """Through JSON, as a checkpoint would store it."""
    return json.loads(json.dumps(d))


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
    coba = CoBa(["a", "b"], window=5, temperature=5.0, warmup_points=2)
    coba.observe_validation({"a": 4.0})              # b missing at the first point
    coba.observe_validation({"a": 2.0, "b": 3.0})    # b's normaliser is its first loss
    assert coba.history == [[1.0, None], [0.5, 1.0]]
    with pytest.raises(KeyError):
        coba.observe_validation({"zz": 1.0})
    w = coba.weights()
    assert sum(w.values()) == pytest.approx(1.0) and all(math.isfinite(v) for v in w.values())


def test_coba_state_roundtrip():
    a = CoBa(["a", "b", "c"], window=6, temperature=5.0, warmup_points=3)
    for t in range(25):
        a.observe_validation(_curves(t))
    b = CoBa(["a", "b", "c"], window=6, temperature=5.0, warmup_points=3)
    b.load_state_dict(roundtrip(a.state_dict()))
    assert b.weights() == a.weights()
    for t in range(25, 40):
        a.observe_validation(_curves(t))
        b.observe_validation(_curves(t))
        assert b.weights() == a.weights()
    assert torch.equal(a.weights_tensor(), torch.tensor(list(a.weights().values()), dtype=torch.float32))
    with pytest.raises(ValueError):
        CoBa(["a", "b"], window=6, temperature=5.0, warmup_points=3).load_state_dict(roundtrip(a.state_dict()))
