"""Generate the synthetic multilingual suite: pools and splits of `Record`s, deterministic given a seed.

A *combination* is one (family, parameters) problem, e.g. sum_where/pred=gt:8. The suite is built so
that supervised fine-tuning can add knowledge the base model does not have, and so that the paper's
cross-lingual claim can be tested (docs/synthetic.md):

- A few whole families (`heldout_families`, chosen by seed) are *held out*: none of their
  combinations is in pretraining; all of them are in the SFT data in python only. Their renderings in
  the other languages form `transfer-family`, the harder transfer split.
- Every other family, from a seeded shuffle of its combinations:
  - test: `max(1, round(test_fraction * n))` combinations (none for a one-combination family), in no
    training data at all (`synthetic-<language>`: compositional generalisation, the control);
  - pretrain pool: `max(1, round(pretrain_fraction * rest))` of the rest, rendered in all six
    languages (`pretrain` split): the base learns every language's syntax and every family's shape;
  - SFT pool: the remaining combinations, rendered per language in a *prefix* of the shuffled order
    whose length depends on the language (`sft` split): python gets all of them, then javascript >
    java > cpp > go > rust (SFT_FRACTIONS). The prefixes are nested.
- transfer: for each language but python, the SFT-pool combinations in python's SFT data but not in
  its own — in neither SFT nor pretraining data of that language (nor of any language's pretraining).
  What SFT teaches in python should show up there. A seeded `transfer_dev_fraction` of each
  language's eligible combinations is `transfer-dev` instead (hyper-parameters are chosen on it,
  never on `transfer`).
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

SPLITS = ("pretrain", "sft", "test", "transfer", "transfer-dev", "transfer-family")
TRAINING_SPLITS = ("pretrain", "sft")
SFT_FRACTIONS = {"python": 1.0, "javascript": 0.5, "java": 0.4, "cpp": 0.3, "go": 0.25, "rust": 0.2}
HIGH_RESOURCE = "python"


@dataclass(frozen=True)
class SuiteSettings:
    """Everything a suite depends on; recorded in every record's meta and in the written manifest."""

    seed: int = 0
    test_fraction: float = 0.15
    pretrain_fraction: float = 0.4  # of a family's non-test combinations (at least one)
    sft_fractions: tuple[tuple[str, float], ...] = tuple(SFT_FRACTIONS.items())
    heldout_families: int = 5
    transfer_dev_fraction: float = 0.2
    transfer_per_language: int | None = None  # cap on transfer combinations per language (None: all)
    max_cases: int = 10

    def __post_init__(self) -> None:
        fractions = dict(self.sft_fractions)
        if set(fractions) != set(LANGUAGES):
            raise ValueError(f"sft_fractions must name exactly {', '.join(LANGUAGES)}")
        if fractions[HIGH_RESOURCE] != 1.0 or not all(0 <= f <= 1 for f in fractions.values()):
            raise ValueError("sft fractions must be in [0, 1], python's 1 (transfer is defined from python)")
        for name in ("test_fraction", "pretrain_fraction", "transfer_dev_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.heldout_families < len(FAMILIES):
            raise ValueError(f"heldout_families must be in [0, {len(FAMILIES)})")
        if self.transfer_per_language is not None and self.transfer_per_language < 1:
            raise ValueError("transfer_per_language must be at least 1 (or None: no cap)")


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


@dataclass(frozen=True)
class Assignment:
    """Which combinations go where, per language (lists in registry order)."""

    pretrain: list[Problem]  # rendered in every language
    sft: dict[str, list[Problem]]
    test: list[Problem]  # rendered in every language
    transfer: dict[str, list[Problem]]
    transfer_dev: dict[str, list[Problem]]
    transfer_family: dict[str, list[Problem]]
    heldout: tuple[str, ...]  # held-out family names


def heldout_families(settings: SuiteSettings) -> tuple[str, ...]:
    """Whole families kept out of pretraining, in SFT in python only (families of 3+ combinations)."""
    eligible = sorted(name for name, f in FAMILIES.items() if len(f.problems) >= 3)
    return tuple(sorted(_rng(settings, "heldout").sample(eligible, settings.heldout_families)))


def assign(settings: SuiteSettings) -> Assignment:
    fractions = dict(settings.sft_fractions)
    held = heldout_families(settings)
    pretrain, test = [], []
    sft: dict[str, list[Problem]] = {lang: [] for lang in LANGUAGES}
    family_transfer: list[Problem] = []
    for family in FAMILIES.values():
        order = list(family.problems)
        _rng(settings, "split", family.name).shuffle(order)
        if family.name in held:
            sft[HIGH_RESOURCE] += order
            family_transfer += order
            continue
        n_test = max(1, round(settings.test_fraction * len(order))) if len(order) > 1 and settings.test_fraction else 0
        test += order[:n_test]
        rest = order[n_test:]
        n_pre = min(len(rest), max(1, round(settings.pretrain_fraction * len(rest))))
        pretrain += rest[:n_pre]
        pool = rest[n_pre:]
        for lang in LANGUAGES:
            sft[lang] += pool[:round(fractions[lang] * len(pool))]
    rank = {p.key: k for k, p in enumerate(p for f in FAMILIES.values() for p in f.problems)}

    def in_order(ps: list[Problem]) -> list[Problem]:
        return sorted(ps, key=lambda p: rank[p.key])

    transfer, dev = {}, {}
    python_sft = {p.key for p in sft[HIGH_RESOURCE]}
    held_keys = {p.key for p in family_transfer}
    for lang in LANGUAGES:
        if lang == HIGH_RESOURCE:
            continue
        own = {p.key for p in sft[lang]}
        eligible = [p for p in in_order(sft[HIGH_RESOURCE]) if p.key not in own and p.key not in held_keys]
        assert all(p.key in python_sft for p in eligible)
        rng = _rng(settings, "transfer", lang)
        n_dev = round(settings.transfer_dev_fraction * len(eligible))
        picked = set(rng.sample(range(len(eligible)), n_dev))
        dev[lang] = [p for k, p in enumerate(eligible) if k in picked]
        rest = [p for k, p in enumerate(eligible) if k not in picked]
        if settings.transfer_per_language is not None and len(rest) > settings.transfer_per_language:
            keep = set(rng.sample(range(len(rest)), settings.transfer_per_language))
            rest = [p for k, p in enumerate(rest) if k in keep]
        transfer[lang] = rest
    family = {lang: in_order(family_transfer) for lang in LANGUAGES if lang != HIGH_RESOURCE}
    return Assignment(in_order(pretrain), {lang: in_order(ps) for lang, ps in sft.items()}, in_order(test),
                      transfer, dev, family, held)


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


def split_problems(a: Assignment) -> dict[str, dict[str, list[Problem]]]:
    """split -> language -> problems."""
    every = lambda ps: {lang: ps for lang in LANGUAGES}  # noqa: E731
    return {"pretrain": every(a.pretrain), "sft": a.sft, "test": every(a.test), "transfer": a.transfer,
            "transfer-dev": a.transfer_dev, "transfer-family": a.transfer_family}


def generate_suite(seed: int = 0, splits: tuple[str, ...] = SPLITS, **settings) -> Suite:
    """The suite for a seed; keyword arguments are the other `SuiteSettings` fields. `splits` only
    limits which splits are rendered (the assignment of combinations to splits is the same)."""
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; known: {', '.join(SPLITS)}")
    cfg = SuiteSettings(seed=seed, **settings)
    problems = split_problems(assign(cfg))
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
                "settings": settings_json(suite.settings), "counts": counts, "families": len(FAMILIES),
                "heldout_families": list(heldout_families(suite.settings))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return counts


def settings_json(s: SuiteSettings) -> dict:
    return {"seed": s.seed, "test_fraction": s.test_fraction, "pretrain_fraction": s.pretrain_fraction,
            "sft_fractions": dict(s.sft_fractions), "heldout_families": s.heldout_families,
            "transfer_dev_fraction": s.transfer_dev_fraction, "transfer_per_language": s.transfer_per_language,
            "max_cases": s.max_cases}
