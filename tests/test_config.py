"""The strict config loader: typos and wrong types are errors naming the file and key path."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from mftcoder_pp.config import ConfigError, load_config


@dataclass(frozen=True)
class Inner:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class Outer:
    mode: Literal["a", "b"] = "a"
    steps: int = 10
    flag: bool = False
    items: list[Inner] = field(default_factory=list)
    optional: int | None = None

    def __post_init__(self):
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_loads_nested_and_converts(tmp_path):
    cfg = load_config(write(tmp_path, "mode: b\nsteps: 3\nitems:\n  - {name: x, weight: 2}\n"), Outer)
    assert cfg == Outer(mode="b", steps=3, items=[Inner("x", 2.0)])
    assert isinstance(cfg.items[0].weight, float)
    assert load_config(write(tmp_path, ""), Outer) == Outer()


@pytest.mark.parametrize("text,message", [
    ("stepz: 3\n", "c.yaml: stepz: unknown key (known: flag, items, mode, optional, steps)"),
    ("items:\n  - {name: x, wieght: 2}\n", "c.yaml: items[0].wieght: unknown key"),
    ("items:\n  - {weight: 2}\n", "c.yaml: items[0].name: missing required key"),
    ("mode: c\n", "c.yaml: mode: must be one of 'a', 'b', got 'c'"),
    ("steps: three\n", "c.yaml: steps: expected an integer, got 'three'"),
    ("steps: 0\n", "c.yaml: top level: steps must be positive, got 0"),
    ("flag: 1\n", "c.yaml: flag: expected true or false, got 1"),
    ("items: {name: x}\n", "c.yaml: items: expected a list"),
    ("mode: [\n", "c.yaml:2: invalid YAML"),
    ("- 1\n", "c.yaml: top level: expected a mapping, got list"),
])
def test_errors_name_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), Outer)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml", Outer)


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """PyYAML reads `1e-5` as a string (YAML 1.1); a float field takes it as the number it means."""
    from dataclasses import dataclass

    from mftcoder_pp.config import load_config

    @dataclass
    class C:
        lr: float
        name: str = "x"

    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-5\nname: 1e-5\n")
    c = load_config(path, C)
    assert c.lr == 1e-5 and c.name == "1e-5"


def test_a_byte_order_mark_and_invalid_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfsteps: 3\n")
    assert load_config(path, Outer).steps == 3
    path.write_bytes(b"steps: \xff\n")
    with pytest.raises(ConfigError, match="c.yaml: not a UTF-8 text file"):
        load_config(path, Outer)


def test_overrides_on_a_file_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="c.yaml: top level: expected a mapping, got list"):
        load_config(write(tmp_path, "- 1\n"), Outer, overrides={"steps": 2})


def test_a_typo_gets_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        load_config(write(tmp_path, "stepz: 3\n"), Outer)
