"""The GPU recipe builds end to end without a GPU or weights: its config resolves, every part is
built on a tiny random model of the real architecture (one training step runs), and the real-size
model is built on the meta device to count what LoRA + HMD-Fusion train."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import train_config
from mftcoder_pp.cli import main
from mftcoder_pp.config import load_config
from mftcoder_pp.model.load import QWEN2_5_CODER_1_5B
from mftcoder_pp.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "train" / "gpu_qwen2.5-coder-1.5b.yaml"


def _qwen_tokenizer_dir(ws, path: Path) -> Path:
    """A tokenizer standing in for the checkpoint's, with the language tokens added (as
    `mftpp tokenizer configs/tokenizer/pretrained.yaml` would)."""
    from mftcoder_pp.model.load import load_tokenizer

    tok = load_tokenizer(ws["tokenizer"])
    tok.save_pretrained(str(path))
    return path


def test_recipe_trains_one_step_on_a_tiny_model_of_the_real_architecture(tiny_workspace, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = load_config(RECIPE, TrainConfig)
    assert (cfg.optim.batch_size, cfg.data.max_length, cfg.adapter.lora.rank, cfg.precision) == (64, 2048, 8, "bf16")
    assert cfg.adapter.gradient_checkpointing and [p.tasks for p in cfg.optim.phases][0] == ["*/python"]
    tok_dir = _qwen_tokenizer_dir(tiny_workspace, tmp_path / "tok")
    from mftcoder_pp.model.load import load_tokenizer

    tiny = {**QWEN2_5_CODER_1_5B, "vocab_size": len(load_tokenizer(tok_dir)), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2}
    model_dir = tmp_path / "qwen-tiny"
    Qwen2ForCausalLM(Qwen2Config(**tiny)).save_pretrained(str(model_dir))
    import yaml

    data = yaml.safe_load(RECIPE.read_text())
    data.update(out=str(tmp_path / "run"), checkpoint_every=0, tensorboard=False)
    data["model"].update(path=str(model_dir), tokenizer=str(tok_dir))
    data["data"].update(prepared=[str(tiny_workspace["prepared"])], max_length=256)
    data["optim"].update(max_steps=2, batch_size=8, grad_accum=2)
    data["optim"]["phases"][1]["tasks"] = ["*/go", "*/rust"]  # the workspace has python, go and rust
    assert main(["train", str(train_config(tmp_path / "r.yaml", **data)), "--quiet"]) == 0
    assert (tmp_path / "run" / "final" / "hmd_adapter_config.json").exists()


def test_real_size_model_builds_on_the_meta_device():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from mftcoder_pp.languages import LANGUAGES
    from mftcoder_pp.model.adapters import apply_adapters
    from mftcoder_pp.modules.hmd_fusion import HMDConfig, hmd_parameters

    cfg = load_config(RECIPE, TrainConfig)
    a, h = cfg.adapter, cfg.modules.hmd
    with torch.device("meta"):  # the trainer's adapter path, so the count is the one train_config.json reports
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN2_5_CODER_1_5B))
        total = sum(p.numel() for p in model.parameters())
        model, report = apply_adapters(model, a.kind, lora_rank=a.lora.rank, lora_alpha=a.lora.alpha,
                                       lora_dropout=a.lora.dropout, target_modules=a.lora.target_modules,
                                       new_token_ids=[], freeze_position_embeddings=a.freeze_position_embeddings,
                                       gradient_checkpointing=False,
                                       hmd=HMDConfig(languages=list(LANGUAGES), top_layers=h.top_layers, rank=h.rank))
    trainable = report.trainable_params
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    hmd = sum(p.numel() for _, p in hmd_parameters(model))
    assert 1.5e9 < total < 1.6e9  # 1.54B with tied embeddings
    assert trainable < 0.02 * total and hmd > 0
    print(f"Qwen2.5-Coder-1.5B: {total / 1e9:.3f}B params; LoRA r=8 + HMD trainable {trainable / 1e6:.2f}M "
          f"({100 * trainable / total:.2f}%), HMD {hmd / 1e6:.2f}M")
