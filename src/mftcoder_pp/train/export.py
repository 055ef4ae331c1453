"""The run's outputs: OUT/final (a PEFT adapter directory, or a full model directory) with the
tokenizer, and on request OUT/merged (LoRA folded into the base weights). Each loads with
transformers/peft directly (`AutoModelForCausalLM`, `PeftModel.from_pretrained`) or with
`mftcoder_pp.model.load.load_for_inference`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def save_base(model, tokenizer, path: Path) -> Path:
    """The un-adapted base of a LoRA run on a model built from a config (it has no directory yet)."""
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def export_final(out: Path, model, tokenizer, kind: str, merge: bool = False) -> dict:
    """Unwraps HMD-Fusion layers (their adapter is saved beside the weights), so call it once, at the end."""
    from ..modules.hmd_fusion import hmd_layers, remove_hmd, save_hmd_adapter

    final = out / "final"
    hmd = bool(hmd_layers(model))
    if hmd:  # saved as its own adapter; the base/PEFT weights keep their original names
        save_hmd_adapter(model, str(final))
        remove_hmd(model)
    model.save_pretrained(str(final))
    tokenizer.save_pretrained(str(final))
    result = {"final": str(final)}
    if kind == "lora":
        cfg_file = final / "adapter_config.json"
        cfg = json.loads(cfg_file.read_text())
        base = Path(cfg.get("base_model_name_or_path") or "")
        if not (base / "config.json").is_file() and (out / "base" / "config.json").is_file():
            cfg["base_model_name_or_path"] = str((out / "base").resolve())
            cfg_file.write_text(json.dumps(cfg, indent=2))
        if merge:
            merged = out / "merged"
            model.merge_and_unload().save_pretrained(str(merged))
            tokenizer.save_pretrained(str(merged))
            if hmd:
                for f in final.glob("hmd_adapter_*"):
                    shutil.copy(f, merged / f.name)
            result["merged"] = str(merged)
    return result
