"""The synthetic multilingual programming suite (docs/synthetic.md).

Parameterised task families (families/) are written once, in a tiny IR (ir.py), rendered into
python, javascript, java, cpp, go and rust (render.py), given test cases computed by a Python
reference (cases.py) and split into an imbalanced train split, a held-out test split and a
cross-lingual transfer split (suite.py). benchmark.py exposes the test and transfer splits as
benchmarks (`synthetic-<lang>`, `synthetic-transfer`).
"""

from .families import FAMILIES
from .render import LANGUAGES, RENDERERS
from .suite import SPLITS, TRAIN_FRACTIONS, Suite, SuiteSettings, generate_suite, write_suite

__all__ = ["FAMILIES", "LANGUAGES", "RENDERERS", "SPLITS", "TRAIN_FRACTIONS", "Suite", "SuiteSettings",
           "generate_suite", "write_suite"]
