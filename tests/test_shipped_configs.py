"""Every YAML file under configs/ loads against the dataclass of the command it configures."""

from pathlib import Path

import pytest

from mftcoder_pp.config import load_config
from mftcoder_pp.tokenizer import TokenizerConfig

ROOT = Path(__file__).resolve().parents[1] / "configs"
from mftcoder_pp.train.config import TrainConfig

SCHEMAS = {"tokenizer": TokenizerConfig, "train": TrainConfig}
try:  # the preprocessing stage
    from mftcoder_pp.prepare import PrepareConfig

    SCHEMAS["prepare"] = PrepareConfig
except ImportError:  # pragma: no cover
    pass

FILES = sorted(ROOT.rglob("*.yaml"))


def test_every_config_directory_has_a_schema():
    assert {p.relative_to(ROOT).parts[0] for p in FILES} <= set(SCHEMAS)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_config_loads(path):
    schema = SCHEMAS[path.relative_to(ROOT).parts[0]]
    assert isinstance(load_config(path, schema), schema)
