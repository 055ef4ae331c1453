"""Task scheduling: uniform, temperature (Eq. 13) and ATDS (Eq. 1), determinism and resume."""

import json
from collections import Counter

import pytest

from mftcoder_pp.data.sampling import temperature_probabilities
from mftcoder_pp.train.config import ATDSSettings, MixingConfig
from mftcoder_pp.train.mixing import TaskScheduler, zscore

SIZES = {"synthesis/python": 8000, "synthesis/java": 2000, "synthesis/rust": 500, "repair/go": 1200}


def roundtrip(d):
    """Through JSON, as a checkpoint would store it."""
    return json.loads(json.dumps(d))


def _scheduler(sizes, strategy, **settings) -> TaskScheduler:
    """A scheduler with the train config's defaults for every setting not given."""
    a = ATDSSettings()
    defaults = {"temperature": MixingConfig().temperature, "alpha": a.alpha, "beta": a.beta,
                "refresh_every": a.refresh_every, "ema": a.ema, "min_prob": a.min_prob,
                "velocity_sign": a.velocity_sign, "seed": 0}
    return TaskScheduler(sizes, strategy, **{**defaults, **settings})


def test_temperature_and_uniform_probabilities():
    s = _scheduler(SIZES, "temperature", temperature=2.0)
    assert s.tasks == sorted(SIZES)
    expected = temperature_probabilities(SIZES, 2.0)
    assert s.probabilities() == pytest.approx(expected)
    default = _scheduler(SIZES, "temperature")
    assert default.probabilities() == pytest.approx(temperature_probabilities(SIZES))
    u = _scheduler(SIZES, "uniform")
    assert u.probabilities() == pytest.approx({t: 0.25 for t in SIZES})
    assert not s.step_done(50) and not u.step_done(50)  # fixed strategies never refresh


def test_draws_follow_pi_and_are_deterministic():
    s = _scheduler(SIZES, "temperature", seed=7)
    n = 20000
    counts = Counter(s.next_task() for _ in range(n))
    p = s.probabilities()
    chi2 = sum((counts[t] - n * p[t]) ** 2 / (n * p[t]) for t in SIZES)
    assert chi2 < 16.3  # chi-square, 3 dof, p = 0.001
    for t in SIZES:
        assert counts[t] / n == pytest.approx(p[t], abs=0.015)
    a = _scheduler(SIZES, "atds", seed=3)
    b = _scheduler(SIZES, "atds", seed=3)
    c = _scheduler(SIZES, "atds", seed=4)
    seq_a = [a.next_task() for _ in range(200)]
    assert seq_a == [b.next_task() for _ in range(200)]
    assert seq_a != [c.next_task() for _ in range(200)]


def test_empty_task_never_drawn_and_min_prob_floor():
    sizes = {"a": 100000, "b": 10, "c": 0}
    s = _scheduler(sizes, "temperature", temperature=1.0, seed=0)
    assert s.probabilities()["c"] == 0.0
    assert "c" not in {s.next_task() for _ in range(2000)}
    f = _scheduler(sizes, "temperature", temperature=1.0, min_prob=0.1)
    p = f.probabilities()
    assert p["b"] >= 0.1 - 1e-12 and p["c"] == 0.0 and sum(p.values()) == pytest.approx(1.0)
    assert _scheduler(sizes, "uniform").probabilities() == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})
    with pytest.raises(ValueError):
        _scheduler(sizes, "temperature", min_prob=0.6)
    with pytest.raises(ValueError):
        _scheduler(sizes, "bogus")


def test_subset_construction_for_curriculum_phase():
    phase1 = {t: n for t, n in SIZES.items() if t.endswith("/python")}
    s = _scheduler(phase1, "atds", refresh_every=2)
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
    s = _scheduler(SIZES, "atds", refresh_every=10, seed=1)
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
        s = _scheduler({"a": 1000, "b": 1000}, "atds", refresh_every=1)
        for _ in range(5):
            s.observe("a", 2.0 * (0.8 if which == "velocity" else 1.0) ** _, 3.0 if which == "entropy" else 1.0)
            s.observe("b", 2.0, 1.0)
        s.step_done(1)
        assert s.probabilities()["a"] > 0.5


def test_velocity_sign_reverses_which_task_the_velocity_term_favours():
    probs = {}
    for sign in (1, -1):
        s = _scheduler({"a": 1000, "b": 1000}, "atds", refresh_every=1, alpha=0.0, velocity_sign=sign)
        for k in range(5):
            s.observe("a", 2.0 * 0.8 ** k, 1.0)  # a's loss falls, b's stays
            s.observe("b", 2.0, 1.0)
        s.step_done(1)
        probs[sign] = s.probabilities()["a"]
    assert probs[1] > 0.5 > probs[-1] and probs[1] == pytest.approx(1 - probs[-1])
    with pytest.raises(ValueError, match="velocity_sign"):
        _scheduler({"a": 1}, "atds", velocity_sign=0)


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
    a = _scheduler(SIZES, "atds", refresh_every=5, seed=11, min_prob=0.02)
    _run(a, 37)
    state = roundtrip(a.state_dict())
    b = _scheduler(SIZES, "atds", refresh_every=5, seed=11, min_prob=0.02)
    b.load_state_dict(state)
    assert b.probabilities() == a.probabilities()
    da, pa = _run(a, 100, start=38)
    db, pb = _run(b, 100, start=38)
    assert da == db and pa == pb
    assert len({tuple(p.values()) for p in pa}) > 1  # π did evolve
    with pytest.raises(ValueError):
        _scheduler(SIZES, "temperature", seed=11).load_state_dict(state)
    with pytest.raises(ValueError):
        _scheduler(SIZES, "atds", refresh_every=6, seed=11, min_prob=0.02).load_state_dict(state)
