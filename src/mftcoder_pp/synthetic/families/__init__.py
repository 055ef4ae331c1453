"""The registry of synthetic task families: name -> Family (lists, then strings, then numbers).

Adding a family = one function returning a `Family` in lists.py, strings.py or numbers.py, listed in
that module's FAMILIES tuple. Names must be unique; tests/test_synthetic.py checks every family.
"""

from __future__ import annotations

from . import lists, numbers, strings
from .base import Family, Problem

FAMILIES: dict[str, Family] = {}
for _family in (*lists.FAMILIES, *strings.FAMILIES, *numbers.FAMILIES):
    if _family.name in FAMILIES:
        raise ValueError(f"two synthetic families are named {_family.name!r}")
    FAMILIES[_family.name] = _family


def all_problems() -> list[Problem]:
    """Every (family, parameters) combination, in registry order."""
    return [p for family in FAMILIES.values() for p in family.problems]


__all__ = ["FAMILIES", "Family", "Problem", "all_problems"]
