"""Every YAML file under configs/ loads against the dataclass of the command it configures; the
Accelerate launcher configs under configs/accelerate/ load with accelerate's own loader instead."""

from pathlib import Path

import pytest

from mftcoder_pp.config import load_config
from mftcoder_pp.tokenizer import TokenizerConfig

ROOT = Path(__file__).resolve().parents[1] / "configs"
from mftcoder_pp.experiment.config import ExperimentConfig
from mftcoder_pp.train.config import TrainConfig

SCHEMAS = {"tokenizer": TokenizerConfig, "train": TrainConfig, "experiment": ExperimentConfig}
try:  # the preprocessing stage
    from mftcoder_pp.prepare import PrepareConfig

    SCHEMAS["prepare"] = PrepareConfig
except ImportError:  # pragma: no cover
    pass

FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.relative_to(ROOT).parts[0] != "accelerate")
ACCELERATE = sorted((ROOT / "accelerate").glob("*.yaml"))


def test_every_config_directory_has_a_schema():
    assert {p.relative_to(ROOT).parts[0] for p in FILES} <= set(SCHEMAS)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_config_loads(path):
    schema = SCHEMAS[path.relative_to(ROOT).parts[0]]
    assert isinstance(load_config(path, schema), schema)


@pytest.mark.parametrize("path", ACCELERATE, ids=[p.name for p in ACCELERATE])
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(path))  # what `accelerate launch --config_file` does: unknown keys fail
    assert isinstance(cfg, ClusterConfig)
    # `accelerate launch` copies nested keys onto its options (fsdp_config.x -> --fsdp_x) and silently
    # ignores unknown ones, so a typo there would do nothing: each must name a launch option.
    options = {action.dest for action in launch_command_parser()._actions}
    prefixes = {"fsdp_config": "fsdp_", "dynamo_config": "dynamo_", "deepspeed_config": ""}
    for section, prefix in prefixes.items():
        for key in getattr(cfg, section):
            assert (key if key.startswith(prefix) else prefix + key) in options, f"{section}.{key}"
    # More than one process needs a launcher that starts them: MULTI_CPU goes through mpirun and,
    # without an MPI hostfile, starts one process (docs/distributed.md).
    if cfg.num_processes > 1:
        assert cfg.distributed_type in (DistributedType.MULTI_GPU, DistributedType.FSDP, DistributedType.DEEPSPEED)
    if cfg.distributed_type == DistributedType.FSDP:
        from accelerate.utils.constants import (FSDP_AUTO_WRAP_POLICY, FSDP_BACKWARD_PREFETCH,
                                                FSDP_SHARDING_STRATEGY, FSDP_STATE_DICT_TYPE)
        from transformers import Qwen2Config, Qwen2ForCausalLM

        f = cfg.fsdp_config
        assert f["fsdp_sharding_strategy"] in FSDP_SHARDING_STRATEGY
        assert f["fsdp_auto_wrap_policy"] in FSDP_AUTO_WRAP_POLICY
        assert f["fsdp_backward_prefetch"] in FSDP_BACKWARD_PREFETCH
        assert f["fsdp_state_dict_type"] in FSDP_STATE_DICT_TYPE
        assert f["fsdp_use_orig_params"] is True  # LoRA and vocabulary adapters: mixed requires_grad
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             num_key_value_heads=1, intermediate_size=32))
        assert f["fsdp_transformer_layer_cls_to_wrap"] in {type(m).__name__ for m in model.modules()}
    if cfg.distributed_type == DistributedType.DEEPSPEED:
        ds = cfg.deepspeed_config
        assert ds["zero_stage"] in (0, 1, 2, 3)
        assert {ds.get("offload_optimizer_device", "none"), ds.get("offload_param_device", "none")} <= \
            {"none", "cpu", "nvme"}
