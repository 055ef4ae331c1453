"""Temperature sampling (Eq. 13), entropy curriculum (Eq. 14), prompt schema and loss mask."""

import math

import pytest

from mftcoder_pp.data.prompts import (IGNORE_INDEX, TEMPLATES, build_example, language_token, render_prompt,
                                      variant_for)
from mftcoder_pp.data.sampling import (DEFAULT_TEMPERATURE, curriculum_order, temperature_probabilities,
                                       token_entropy)

SIZES = {"python": 8000, "java": 2000, "rust": 500}


def test_temperature_one_is_proportional():
    p = temperature_probabilities(SIZES, 1.0)
    assert p["python"] == pytest.approx(8000 / 10500) and sum(p.values()) == pytest.approx(1)


def test_default_flattens_and_paper_value_sharpens():
    proportional = temperature_probabilities(SIZES, 1.0)
    flat = temperature_probabilities(SIZES)  # exponent 0.7
    sharp = temperature_probabilities(SIZES, 0.7)  # the paper's printed T: exponent 1.43
    assert DEFAULT_TEMPERATURE == pytest.approx(1 / 0.7)
    assert flat["rust"] > proportional["rust"] > sharp["rust"]
    expected = {k: v ** 0.7 for k, v in SIZES.items()}
    assert flat["rust"] == pytest.approx(expected["rust"] / sum(expected.values()))


def test_high_temperature_is_uniform_and_huge_sizes_do_not_overflow():
    p = temperature_probabilities(SIZES, 1e6)
    assert all(v == pytest.approx(1 / 3, abs=1e-4) for v in p.values())
    big = temperature_probabilities({"a": 10**300, "b": 10**299}, 0.01)
    assert big["a"] == pytest.approx(1.0) and math.isfinite(big["b"])


def test_empty_tasks_get_zero_and_bad_input_raises():
    assert temperature_probabilities({"a": 0, "b": 5})["a"] == 0.0
    for bad, kwargs in (({}, {}), ({"a": 0}, {}), ({"a": -1, "b": 1}, {}), ({"a": 1}, {"temperature": 0})):
        with pytest.raises(ValueError):
            temperature_probabilities(bad, **kwargs)


def test_token_entropy_known_values():
    assert token_entropy([]) == 0.0
    assert token_entropy(["a", "a", "a"]) == 0.0
    assert token_entropy(["a", "b"]) == pytest.approx(math.log(2))
    assert token_entropy(list("abcd")) == pytest.approx(math.log(4))


def test_curriculum_orders_low_to_high_entropy():
    order = curriculum_order({"hard": [list("abcdefgh")], "easy": [list("aaaa"), list("aaab")], "mid": [list("aabb")]})
    assert [t for t, _ in order] == ["easy", "mid", "hard"]
    with pytest.raises(ValueError, match="task 'x' has no examples"):
        curriculum_order({"x": []})


def test_prompt_schema_variants_and_mask():
    first = render_prompt("Add two numbers.", "def add(a, b):", "python", 0)
    assert first == "Instruction: Add two numbers.\nInput: def add(a, b):\nOutput: "
    for v in range(len(TEMPLATES)):
        text = render_prompt("Add two numbers.", "fn add(a: i32) -> i32 {", "rust", v, language_prefix=True)
        assert text.startswith(language_token("rust")) and "fn add(a: i32) -> i32 {" in text
        assert text.index("nstruction") < text.index("nput") < text.index("utput")
    with pytest.raises(ValueError):
        render_prompt("x", "y", "python", len(TEMPLATES))


def test_variants_are_deterministic_and_spread():
    ids = [f"r{i}" for i in range(500)]
    a = [variant_for(i, seed=1) for i in ids]
    assert a == [variant_for(i, seed=1) for i in ids]
    assert a != [variant_for(i, seed=2) for i in ids]
    assert set(a) == set(range(len(TEMPLATES)))


def test_build_example_masks_the_prompt_and_truncates_the_response():
    ex = build_example([1, 2, 3], [7, 8], max_length=10, eos_id=0)
    assert ex.input_ids == [1, 2, 3, 7, 8, 0] and ex.labels == [IGNORE_INDEX] * 3 + [7, 8, 0]
    assert not ex.truncated
    cut = build_example([1, 2, 3], [7, 8, 9], max_length=5, eos_id=0)
    assert cut.input_ids == [1, 2, 3, 7, 8] and cut.truncated
    assert build_example([1, 2, 3], [7], max_length=3) is None
