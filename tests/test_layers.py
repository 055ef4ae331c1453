"""Imports run one way: down the layers of docs/architecture.md ("Layers"), never up, and across a
layer only along the arrows listed there.

The checker parses every module of src/mftcoder_pp (no import is executed), resolves its absolute
and relative imports, including those inside functions, to package modules, and maps each module
to its unit: a subpackage (`data`, `execution`, ...) or a top-level module (`cli`, `prepare`, ...).
Inside a unit imports are free. It does not see imports made from strings (`importlib`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mftcoder_pp"
SRC = ROOT / "src" / PACKAGE
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Top to bottom. A unit may import any unit of a lower layer; "__init__" is the package itself
# (`mftcoder_pp.__version__`).
LAYERS: list[tuple[str, set[str]]] = [
    ("entry point", {"cli"}),
    ("orchestration", {"experiment", "demo", "devscore"}),
    ("stages", {"prepare", "tokenizer", "train", "generate", "evaluate", "summary", "report"}),
    ("library", {"model", "modules", "losses", "data", "generation", "benchmarks", "execution", "metrics",
                 "synthetic"}),
    ("base", {"__init__", "config", "defaults", "languages", "paths", "provenance", "pyparse", "progress"}),
]
# The only imports between two units of one layer (importer -> imported). No other arrow is allowed.
PEERS: dict[str, set[str]] = {
    "demo": {"experiment"},
    "experiment": {"devscore"},
    "prepare": {"report"},
    "report": {"train"},
    "provenance": {"__init__"},
    "evaluate": {"summary"},
    "generation": {"benchmarks", "data"},
    "benchmarks": {"synthetic", "data", "execution"},
    "synthetic": {"data"},
    "losses": {"data"},
    "model": {"modules"},
}
# Single imports that break the map for now, each with the reason; an entry that no longer matches
# an import fails test_every_exception_is_still_needed, so the list only shrinks.
EXCEPTIONS: dict[tuple[str, str], str] = {}
LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def module_name(path: Path, src: Path = SRC) -> tuple[str, bool]:
    """(dotted module name, is a package) of a file under src/mftcoder_pp."""
    parts = [PACKAGE, *path.relative_to(src).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported package module) for every import of `source`, wherever it stands."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for a in node.names:  # `from . import x` / `from .pkg import mod` import the submodule
                sub = f"{target}.{a.name}"
                found.append((node.lineno, sub if sub in known else target))
    return sorted(set(found))


def violations(sources: dict[str, tuple[str, str, bool]], used: set | None = None) -> list[str]:
    """`sources`: module -> (file shown in messages, source text, is a package). Returns one line
    `file:line: importer -> imported (why)` per import that breaks the map and is not one of the
    EXCEPTIONS; the exceptions it met are added to `used`."""
    known = set(sources)
    used = set() if used is None else used
    bad = []
    for module, (shown, text, is_package) in sorted(sources.items()):
        src_unit = unit_of(module)
        if src_unit not in LAYER_OF:
            bad.append(f"{shown}:1: {module} is in no layer (add {src_unit!r} to LAYERS)")
            continue
        for line, target in imports(text, module, is_package, known):
            dst_unit = unit_of(target)
            if dst_unit == src_unit:
                continue
            if (module, target) in EXCEPTIONS:
                used.add((module, target))
                continue
            if dst_unit not in LAYER_OF:
                bad.append(f"{shown}:{line}: {module} -> {target} (imports a unit in no layer)")
            elif LAYER_OF[dst_unit] < LAYER_OF[src_unit]:
                bad.append(f"{shown}:{line}: {module} -> {target} (up: {LAYERS[LAYER_OF[src_unit]][0]} "
                           f"imports {LAYERS[LAYER_OF[dst_unit]][0]})")
            elif LAYER_OF[dst_unit] == LAYER_OF[src_unit] and dst_unit not in PEERS.get(src_unit, ()):
                bad.append(f"{shown}:{line}: {module} -> {target} (across {LAYERS[LAYER_OF[src_unit]][0]}: "
                           f"{src_unit} -> {dst_unit} is not an allowed arrow)")
    return bad


def package_sources() -> dict[str, tuple[str, str, bool]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        name, is_package = module_name(path)
        out[name] = (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"), is_package)
    return out


def test_no_import_runs_up_a_layer():
    bad = violations(package_sources())
    assert not bad, "imports against docs/architecture.md (Layers):\n" + "\n".join(bad)


def test_every_exception_is_still_needed():
    used: set = set()
    violations(package_sources(), used)
    assert not set(EXCEPTIONS) - used, f"no longer needed, remove from EXCEPTIONS: {sorted(set(EXCEPTIONS) - used)}"


def test_the_checker_reports_an_upward_import_and_an_unlisted_peer():
    sources = package_sources()
    sources["mftcoder_pp.execution.x"] = (
        "src/mftcoder_pp/execution/x.py",
        '"""Deliberately wrong."""\n\ndef f():\n    from ..train import loop\n    import mftcoder_pp.cli\n',
        False)
    sources["mftcoder_pp.metrics.y"] = ("src/mftcoder_pp/metrics/y.py", "from ..data import records\n", False)
    bad = violations(sources)
    assert bad == [
        "src/mftcoder_pp/execution/x.py:4: mftcoder_pp.execution.x -> mftcoder_pp.train.loop "
        "(up: library imports stages)",
        "src/mftcoder_pp/execution/x.py:5: mftcoder_pp.execution.x -> mftcoder_pp.cli (up: library imports entry point)",
        "src/mftcoder_pp/metrics/y.py:1: mftcoder_pp.metrics.y -> mftcoder_pp.data.records "
        "(across library: metrics -> data is not an allowed arrow)",
    ]


def test_the_map_covers_the_package_and_the_peer_arrows_form_no_circle():
    units = {unit_of(m) for m in package_sources()}
    assert units <= set(LAYER_OF), f"units in no layer: {sorted(units - set(LAYER_OF))}"
    assert set(LAYER_OF) <= units, f"map names units the package does not have: {sorted(set(LAYER_OF) - units)}"
    for src, dsts in PEERS.items():
        assert all(LAYER_OF[src] == LAYER_OF[d] for d in dsts), (src, dsts)
    seen: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(unit: str, path: list[str]) -> None:
        assert seen.get(unit) != 1, f"peer arrows form a circle: {' -> '.join(path + [unit])}"
        if seen.get(unit) is None:
            seen[unit] = 1
            for d in sorted(PEERS.get(unit, ())):
                visit(d, path + [unit])
            seen[unit] = 2

    for unit in sorted(PEERS):
        visit(unit, [])


def test_the_architecture_doc_names_every_unit():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = re.search(r"^## Layers\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/architecture.md has no '## Layers' section"
    missing = [u for u in LAYER_OF if u != "__init__" and not re.search(rf"\b{re.escape(u)}\b", section.group(1))]
    assert not missing, f"docs/architecture.md (Layers) does not place: {missing}"
