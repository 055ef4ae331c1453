"""Generate the synthetic multilingual suite: splits of `Record`s, deterministic given a seed.

A *combination* is one (family, parameters) problem, e.g. sum_where/pred=gt:8. Per family, with a
seeded shuffle of its combinations:
- test: `max(1, round(test_fraction * n))` combinations (none for a one-combination family),
  held out of every language's training data;
- train: the rest, rendered in a *prefix* of the shuffled order whose length depends on the
  language: python gets all of them, then javascript > java > cpp > go > rust (TRAIN_FRACTIONS),
  each at least one per family. The prefixes are nested: what rust trains on, every language does;
- transfer: for each language other than python, the combinations in python's training split but
  not in its own (at most `transfer_per_language`, chosen by seed) — the cross-lingual claim is
  that a model solves these in, say, rust because it saw them in python.
Test cases are chosen once per combination (cases.py) and shared by its six renderings; which
phrasing of the instruction a record gets is drawn per (combination, language).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..data.records import Record
from .cases import select_cases
from .families import FAMILIES, Problem
from .render import LANGUAGES, RENDERERS

SPLITS = ("train", "test", "transfer")
TRAIN_FRACTIONS = {"python": 1.0, "javascript": 0.7, "java": 0.55, "cpp": 0.45, "go": 0.35, "rust": 0.25}
HIGH_RESOURCE = "python"


@dataclass(frozen=True)
class SuiteSettings:
    """Everything a suite depends on; recorded in every record's meta and in the written manifest."""

    seed: int = 0
    test_fraction: float = 0.15
    train_fractions: tuple[tuple[str, float], ...] = tuple(TRAIN_FRACTIONS.items())
    transfer_per_language: int | None = 40  # None: every eligible combination
    max_train_per_family: int | None = None  # the size knob: caps python's training combinations per family
    max_cases: int = 10

    def __post_init__(self) -> None:
        fractions = dict(self.train_fractions)
        if set(fractions) != set(LANGUAGES):
            raise ValueError(f"train_fractions must name exactly {', '.join(LANGUAGES)}")
        if fractions[HIGH_RESOURCE] != 1.0 or not all(0 < f <= 1 for f in fractions.values()):
            raise ValueError("train fractions must be in (0, 1], python's 1 (transfer is defined from python)")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.max_train_per_family is not None and self.max_train_per_family < 1:
            raise ValueError("max_train_per_family must be at least 1")


@dataclass
class Suite:
    settings: SuiteSettings
    splits: dict[str, list[Record]] = field(default_factory=dict)  # split -> records of all languages

    def records(self, split: str, language: str | None = None) -> list[Record]:
        if split not in self.splits:
            raise KeyError(f"split {split!r} was not generated (have: {', '.join(self.splits)})")
        return [r for r in self.splits[split] if language is None or r.language == language]

    def keys(self, split: str, language: str) -> set[str]:
        """The combinations (meta['key']) a split holds for one language."""
        return {r.meta["key"] for r in self.records(split, language)}

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {lang: len(self.records(s, lang)) for lang in LANGUAGES} for s in self.splits}


def _rng(settings: SuiteSettings, *parts: object) -> random.Random:
    # random.Random seeded with a str hashes it with SHA-512: stable across runs and PYTHONHASHSEED.
    return random.Random("/".join(map(str, (settings.seed, *parts))))


def assign_splits(settings: SuiteSettings) -> tuple[dict[str, list[Problem]], list[Problem]]:
    """(train problems per language, test problems), both in registry order."""
    fractions = dict(settings.train_fractions)
    train: dict[str, list[Problem]] = {lang: [] for lang in LANGUAGES}
    test: list[Problem] = []
    for family in FAMILIES.values():
        order = list(family.problems)
        _rng(settings, "split", family.name).shuffle(order)
        n_test = max(1, round(settings.test_fraction * len(order))) if len(order) > 1 and settings.test_fraction else 0
        test += order[:n_test]
        # The cap shortens every language's prefix alike: the test split does not depend on it, and a
        # smaller suite never trains a language on a combination the full suite keeps from it.
        rest = order[n_test:][:settings.max_train_per_family]
        for lang in LANGUAGES:
            train[lang] += rest[:max(1, round(fractions[lang] * len(rest)))] if rest else []
    rank = {p.key: k for k, p in enumerate(p for f in FAMILIES.values() for p in f.problems)}
    def in_order(ps: list[Problem]) -> list[Problem]:
        return sorted(ps, key=lambda p: rank[p.key])
    return {lang: in_order(ps) for lang, ps in train.items()}, in_order(test)


def transfer_problems(settings: SuiteSettings, train: dict[str, list[Problem]]) -> dict[str, list[Problem]]:
    high = train[HIGH_RESOURCE]
    out: dict[str, list[Problem]] = {}
    for lang in LANGUAGES:
        if lang == HIGH_RESOURCE:
            continue
        own = {p.key for p in train[lang]}
        eligible = [p for p in high if p.key not in own]
        if settings.transfer_per_language is not None and len(eligible) > settings.transfer_per_language:
            picked = set(_rng(settings, "transfer", lang).sample(range(len(eligible)), settings.transfer_per_language))
            eligible = [p for k, p in enumerate(eligible) if k in picked]
        out[lang] = eligible
    return out


def make_record(problem: Problem, language: str, split: str, cases, settings: SuiteSettings) -> Record:
    r = RENDERERS[language]
    choice = _rng(settings, "phrase", problem.key, language).randrange(len(problem.phrasings))
    instruction = problem.phrasings[choice]
    return Record(
        id=f"synthetic/{split}/{language}/{problem.key}", task="synthesis", language=language,
        instruction=instruction, input=r.prompt(problem.words, problem.args, problem.returns, instruction),
        output=r.body(problem.body), tests=r.test(problem.words, problem.args, problem.returns, cases),
        entry_point=r.name(problem.words), source=f"mftcoder_pp.synthetic seed={settings.seed}",
        meta={"family": problem.family, "params": dict(problem.params), "key": problem.key, "split": split,
              "phrasing": choice, "seed": settings.seed, "n_cases": len(cases)})


def generate_suite(seed: int = 0, splits: tuple[str, ...] = SPLITS, **settings) -> Suite:
    """The suite for a seed; keyword arguments are the other `SuiteSettings` fields. `splits` only
    limits which splits are rendered (the assignment of combinations to splits is the same)."""
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; known: {', '.join(SPLITS)}")
    cfg = SuiteSettings(seed=seed, **settings)
    train, test = assign_splits(cfg)
    transfer = transfer_problems(cfg, train)
    problems = {"train": train, "test": {lang: test for lang in LANGUAGES}, "transfer": transfer}
    needed = {p.key: p for split in splits for ps in problems[split].values() for p in ps}
    cases = {}
    for key, p in needed.items():
        siblings = [q for q in FAMILIES[p.family].problems if q.key != key and q.args == p.args]
        cases[key] = select_cases(p, siblings, _rng(cfg, "cases", key), max_cases=cfg.max_cases)
    suite = Suite(cfg)
    for split in splits:
        suite.splits[split] = [make_record(p, lang, split, cases[p.key], cfg)
                               for lang, ps in problems[split].items() for p in ps]
    return suite


def write_suite(suite: Suite, out_dir: str | Path) -> dict[str, dict[str, int]]:
    """Write <out_dir>/<split>/<language>.jsonl (one Record per line) and manifest.json; returns the counts."""
    out = Path(out_dir)
    for split in suite.splits:
        (out / split).mkdir(parents=True, exist_ok=True)
        for lang in LANGUAGES:
            rows = suite.records(split, lang)
            (out / split / f"{lang}.jsonl").write_text("".join(r.to_json() + "\n" for r in rows), encoding="utf-8")
    counts = suite.counts()
    manifest = {"generator": "mftcoder_pp.synthetic", "mftcoder_pp": __version__,
                "settings": _settings_json(suite.settings), "counts": counts, "families": len(FAMILIES)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return counts


def _settings_json(s: SuiteSettings) -> dict:
    return {"seed": s.seed, "test_fraction": s.test_fraction, "train_fractions": dict(s.train_fractions),
            "transfer_per_language": s.transfer_per_language, "max_train_per_family": s.max_train_per_family,
            "max_cases": s.max_cases}
