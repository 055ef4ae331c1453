"""The synthetic multilingual programming suite (docs/synthetic.md).

Parameterised task families (families/) are written once, in a tiny IR (ir.py), rendered into
python, javascript, java, cpp, go and rust (render.py), given test cases computed by a Python
reference (cases.py) and split into a pretraining pool (all six languages), an imbalanced SFT pool,
a held-out test split and cross-lingual transfer splits (suite.py). The held-out splits are
benchmarks (`synthetic-<lang>`, `synthetic-transfer`, `-transfer-dev`, `-transfer-family`) through
mftcoder_pp.benchmarks.synthetic: this package knows nothing of the benchmark registry.
"""

from .families import FAMILIES
from .render import LANGUAGES, RENDERERS
from .suite import SFT_FRACTIONS, SPLITS, Suite, SuiteSettings, generate_suite, write_suite

__all__ = ["FAMILIES", "LANGUAGES", "RENDERERS", "SFT_FRACTIONS", "SPLITS", "Suite", "SuiteSettings",
           "generate_suite", "write_suite"]
