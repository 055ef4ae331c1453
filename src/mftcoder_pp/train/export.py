"""The run's outputs: OUT/final (a PEFT adapter directory, or a full model directory) with the
tokenizer, and on request OUT/merged (LoRA folded into the base weights). Each loads with
transformers/peft directly (`AutoModelForCausalLM`, `PeftModel.from_pretrained`) or with
`mftcoder_pp.model.load.load_for_inference`."""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path


def save_base(model, tokenizer, path: Path) -> Path:
    """The un-adapted base of a LoRA run on a model built from a config (it has no directory yet)."""
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@contextmanager
def hmd_unwrapped(model):
    """Temporarily put the original decoder layers back (HMD-Fusion wraps them), so the base/PEFT
    weights save under their usual names; the HMD adapter is saved on its own."""
    from ..modules.hmd_fusion import HMDLayer
    from ..modules.layers import find_decoder_layers

    wrapped = {}
    try:
        layers = find_decoder_layers(model)
    except ValueError:
        layers = []
    for i, layer in enumerate(layers):
        if isinstance(layer, HMDLayer):
            wrapped[i] = layer
            layers[i] = layer.base_layer
    try:
        yield bool(wrapped)
    finally:
        for i, layer in wrapped.items():
            layers[i] = layer


def save_model_dir(model, tokenizer, path: Path, out: Path, kind: str) -> None:
    """A directory `load_for_inference` (and transformers/peft) can load: weights or adapter,
    tokenizer, and the HMD adapter when the model has one."""
    from ..modules.hmd_fusion import hmd_layers, save_hmd_adapter

    if hmd_layers(model):
        save_hmd_adapter(model, str(path))
    with hmd_unwrapped(model), warnings.catch_warnings():
        # PEFT saves the embedding with the adapter when the vocabulary grew (our language tokens), as it
        # must: their rows exist only in this run. Its warning that it does so is not for our users.
        warnings.filterwarnings("ignore", message="Setting `save_embedding_layers` to `True`")
        model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    if kind == "lora":
        cfg_file = path / "adapter_config.json"
        cfg = json.loads(cfg_file.read_text())
        base = Path(cfg.get("base_model_name_or_path") or "")
        if not (base / "config.json").is_file() and (out / "base" / "config.json").is_file():
            base = out / "base"
        if (base / "config.json").is_file():  # absolute: the adapter must load from any working directory
            cfg["base_model_name_or_path"] = str(base.resolve())
            cfg_file.write_text(json.dumps(cfg, indent=2))


def export_final(out: Path, model, tokenizer, kind: str, merge: bool = False) -> dict:
    final = out / "final"
    save_model_dir(model, tokenizer, final, out, kind)
    result = {"final": str(final)}
    if kind == "lora" and merge:
        merged = out / "merged"
        with hmd_unwrapped(model):
            model.merge_and_unload().save_pretrained(str(merged))
        tokenizer.save_pretrained(str(merged))
        for f in final.glob("hmd_adapter_*"):
            shutil.copy(f, merged / f.name)
        result["merged"] = str(merged)
    return result
