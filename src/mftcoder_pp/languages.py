"""The one table of programming languages: what every stage needs to know about a language, as data.

Each entry says how the language is named (record field, aliases, display name, fence tags), how it
is parsed and scored (tree-sitter grammar, string-literal nodes, CodeBLEU id), where a generated
completion ends (stop rules), and how it is recognised in untagged text. Code that *writes* a
language (synthetic renderers, test instrumenters, the anonymiser's grammar model) and the commands
that compile and run it (execution/toolchains.py) stay in their modules, keyed by these names;
tests/test_language_table.py checks that every such mapping covers exactly this table.

The order of the table is part of its meaning: HMD routing ids index the languages in this order,
and HumanEval-X benchmarks are registered in it. Append new languages at the end.

This module imports nothing from the package: every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE = "\n```"  # a closing Markdown fence at column 0 ends the code in every language

_BRACE_BODY_AFTER = ("\n}",)  # the function's closing brace at column 0 (or Java's `class Solution`)


@dataclass(frozen=True)
class Language:
    name: str  # the id everywhere: record field, file names, the language token <|name|>
    display: str  # in prompts: "Complete the following C++ function."
    extension: str  # source file extension, without the dot
    tree_sitter: str  # grammar module (pinned in pyproject.toml)
    string_nodes: tuple[str, ...]  # tree-sitter node types of string literals (data: never rewritten)
    codebleu: str  # the name the `codebleu` package expects
    line_comment: str
    # Where a completion ends (generation/stops.py). body_*: the rest of a function whose header is in
    # the prompt; program_cut_before: a whole program (MBPP), or None for "only at a closing fence".
    body_cut_before: tuple[str, ...]
    body_cut_after: tuple[str, ...] = ()
    program_cut_before: tuple[str, ...] | None = None
    # Language detection (data/langdetect.py): regexes (re.M) whose hits score the code, and a regex
    # (re.I) for the language named in the instruction. Ties go to the lower detect_rank.
    detect_patterns: tuple[str, ...] = ()
    mention: str = ""
    detect_rank: int = 0
    aliases: tuple[str, ...] = ()  # other names get_language accepts (also read as fence tags)
    fence_tags: tuple[str, ...] = ()  # further ```tags seen in instruction data
    humaneval_x: str | None = None  # the language's code in HumanEval-X / HumanEvalPack file names
    keep_tabs: bool = False  # normalisation keeps tab indentation (gofmt's convention)


LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (
    Language(
        "python", "Python", "py", "tree_sitter_python", ("string",), "python", "#",
        body_cut_before=("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#", "\nassert ", "\n@", "\nimport ",
                         "\nfrom ", FENCE),
        program_cut_before=("\nassert ", "\nprint(", "\nif __name__", FENCE),
        detect_patterns=(
            r"^\s*def \w+\s*\(.*\)\s*(->\s*[^:]+)?:\s*$", r"^\s*(from [\w.]+ )?import \w+[\w., ]*$",
            r"^\s*class \w+(\(.*\))?:\s*$", r"^\s*(if|elif|while|for|with) .+:\s*$", r"\bself\.\w+",
            r"^\s*print\(", r"\b(None|True|False)\b", r"^\s*(else|try|finally):\s*$"),
        mention=r"\bpython\b", detect_rank=0,
        aliases=("py", "python3"), fence_tags=("py3", "python2"), humaneval_x="python"),
    Language(
        "cpp", "C++", "cpp", "tree_sitter_cpp", ("string_literal", "raw_string_literal", "char_literal"), "cpp", "//",
        body_cut_before=(FENCE,), body_cut_after=_BRACE_BODY_AFTER,
        detect_patterns=(
            r"^\s*#include\s*[<\"]", r"\bstd::", r"\bcout\s*<<|\bcin\s*>>", r"^\s*using namespace std", r"\bvector<",
            r"\bint main\s*\(", r"\b(unsigned|size_t|const\s+\w+\s*&)"),
        mention=r"c\+\+|\bcpp\b", detect_rank=3,
        aliases=("c++", "cxx"), fence_tags=("cc", "hpp", "cplusplus"), humaneval_x="cpp"),
    Language(
        "java", "Java", "java", "tree_sitter_java", ("string_literal", "character_literal"), "java", "//",
        body_cut_before=(FENCE,), body_cut_after=_BRACE_BODY_AFTER,
        detect_patterns=(
            r"\b(public|private|protected)\s+(static\s+)?(final\s+)?(class|void|int|String|boolean|long)\b",
            r"\bSystem\.out\.print", r"\bString\[\]", r"^\s*import java\.", r"@Override", r"\bnew \w+(<[^>]*>)?\(",
            r"\b(ArrayList|HashMap|List|Map)<"),
        mention=r"\bjava\b(?!\s*script)", detect_rank=1, humaneval_x="java"),
    Language(
        "javascript", "JavaScript", "js", "tree_sitter_javascript", ("string", "template_string"), "javascript", "//",
        body_cut_before=(FENCE,), body_cut_after=_BRACE_BODY_AFTER,
        detect_patterns=(
            r"\bfunction\s*\w*\s*\(", r"\bconsole\.log\(", r"^\s*(const|let|var)\s+\w+\s*=", r"\)\s*=>",
            r"\b(document|window)\.\w+", r"\brequire\(|\bmodule\.exports\b", r"===|!=="),
        mention=r"\b(javascript|node\.?js)\b", detect_rank=4,
        aliases=("js", "node"), fence_tags=("jsx", "mjs", "nodejs", "javascript1.8"), humaneval_x="js"),
    Language(
        "go", "Go", "go", "tree_sitter_go", ("raw_string_literal", "interpreted_string_literal", "rune_literal"), "go",
        "//", body_cut_before=(FENCE,), body_cut_after=_BRACE_BODY_AFTER,
        detect_patterns=(
            r"^package \w+\s*$", r"^\s*func\s+(\(\w+ \*?\w+\)\s*)?\w+\(", r"\w+\s*:=", r"\bfmt\.\w+\(",
            r'^import (\($|")', r"\bnil\b", r"\bgo func\b|\bchan\b"),
        mention=r"\b(golang|go (code|program|function))\b|\bin go\b", detect_rank=2,
        aliases=("golang",), humaneval_x="go", keep_tabs=True),
    Language(
        "rust", "Rust", "rs", "tree_sitter_rust", ("string_literal", "raw_string_literal", "char_literal"), "rust",
        "//", body_cut_before=(FENCE,), body_cut_after=_BRACE_BODY_AFTER,
        detect_patterns=(
            r"\bfn\s+\w+\s*(<[^>]*>)?\(", r"\blet\s+mut\b", r"\b(println|vec|format|assert_eq)!", r"^\s*impl\b",
            r"&str\b|&mut\b", r"\bpub fn\b", r"::new\(|\.unwrap\(\)", r"^\s*use (std|crate)::"),
        mention=r"\brust\b", detect_rank=5,
        aliases=("rs",), humaneval_x="rust"),
)}


def get_language(name: str) -> Language:
    """Look a language up by name or alias (case and surrounding spaces ignored); unknown names are
    a ValueError that names the language and lists the known ones."""
    key = name.strip().lower()
    if key in LANGUAGES:
        return LANGUAGES[key]
    for lang in LANGUAGES.values():
        if key in lang.aliases:
            return lang
    raise ValueError(f"unknown language {name!r}; known: {', '.join(sorted(LANGUAGES))}")
