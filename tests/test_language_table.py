"""The language table (mftcoder_pp/languages.py) is the one list of languages: every per-language
mapping elsewhere covers exactly its languages, and lookups fail clearly."""

import dataclasses

import pytest

from mftcoder_pp.benchmarks.humaneval_x import LANG_CODES
from mftcoder_pp.data import anonymise, langdetect, syntax
from mftcoder_pp.data.fences import fence_language
from mftcoder_pp.data.prompts import display_name
from mftcoder_pp.execution import instrument
from mftcoder_pp.execution.toolchains import TOOLCHAINS, toolchain
from mftcoder_pp.generation.stops import FENCE, stop_rule
from mftcoder_pp.languages import LANGUAGES, get_language
from mftcoder_pp.metrics.text import CODEBLEU_LANGUAGES
from mftcoder_pp.synthetic.render import RENDERERS
from mftcoder_pp.synthetic.suite import SFT_FRACTIONS

NAMES = set(LANGUAGES)

# Every mapping keyed by language that lives outside the table: code that writes or runs a language,
# and the views other modules derive from the table.
MAPPINGS = {
    "execution/toolchains.py TOOLCHAINS": TOOLCHAINS,
    "execution/instrument.py _BUILDERS": instrument._BUILDERS,
    "data/anonymise.py SPECS": anonymise.SPECS,
    "synthetic/render.py RENDERERS": RENDERERS,
    "synthetic/suite.py SFT_FRACTIONS": SFT_FRACTIONS,
    "data/langdetect.py HEURISTICS": langdetect.HEURISTICS,
    "data/langdetect.py MENTIONS": langdetect.MENTIONS,
    "metrics/text.py CODEBLEU_LANGUAGES": CODEBLEU_LANGUAGES,
    "benchmarks/humaneval_x.py LANG_CODES (values)": dict.fromkeys(LANG_CODES.values()),
}


def test_the_order_is_fixed():
    # HMD routing ids index the languages in table order: reordering would change trained adapters.
    assert list(LANGUAGES) == ["python", "cpp", "java", "javascript", "go", "rust"]


@pytest.mark.parametrize("where", sorted(MAPPINGS))
def test_every_mapping_covers_exactly_the_table(where):
    assert set(MAPPINGS[where]) == NAMES, where


def test_entries_are_keyed_by_their_own_names():
    assert all(lang.name == key for key, lang in LANGUAGES.items())
    assert all(tc.name == key for key, tc in TOOLCHAINS.items())
    assert all(r.language == key for key, r in RENDERERS.items())


def test_entries_are_complete_and_frozen():
    for lang in LANGUAGES.values():
        assert lang.display and lang.extension and lang.line_comment and lang.codebleu, lang.name
        assert lang.string_nodes and lang.body_cut_before and lang.detect_patterns and lang.mention, lang.name
        assert FENCE in lang.body_cut_before, lang.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            lang.name = "other"  # type: ignore[misc]
    assert len({lang.detect_rank for lang in LANGUAGES.values()}) == len(LANGUAGES)


def test_no_name_alias_or_fence_tag_means_two_languages():
    seen: dict[str, str] = {}
    for lang in LANGUAGES.values():
        for tag in (lang.name, *lang.aliases, *lang.fence_tags):
            assert seen.setdefault(tag, lang.name) == lang.name, tag
            assert fence_language(tag) == lang.name, tag


@pytest.mark.parametrize("name", sorted(LANGUAGES))
def test_each_language_is_read_by_every_stage(name):
    lang = LANGUAGES[name]
    assert syntax.parses(TOOLCHAINS[name].hello, name)  # the grammar module loads and parses the language
    assert any(label not in ("output", "input+output", "input+output (joined)")
               for label, _ in syntax.wrappers("x", "", name))  # data/syntax.py has the language's wrappers
    assert display_name(name) == lang.display
    assert stop_rule(name).sequences == lang.body_cut_before + lang.body_cut_after
    assert RENDERERS[name].comment.strip() == lang.line_comment
    assert get_language(name.upper()) is lang and toolchain(name) is TOOLCHAINS[name]


@pytest.mark.parametrize("alias,name", [("js", "javascript"), ("C++", "cpp"), (" py ", "python"), ("golang", "go"),
                                        ("rs", "rust"), ("node", "javascript")])
def test_aliases(alias, name):
    assert get_language(alias).name == name


@pytest.mark.parametrize("lookup", [get_language, toolchain])
def test_unknown_language_names_itself_and_the_known_ones(lookup):
    with pytest.raises(ValueError) as err:
        lookup("COBOL")
    assert str(err.value) == "unknown language 'COBOL'; known: cpp, go, java, javascript, python, rust"
