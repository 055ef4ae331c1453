"""Identifier anonymisation: local variables and parameters renamed consistently (v0, v1, ...).

What is renamed: names *declared* inside a function (parameters, assignments / `let` / `var` /
`:=` / local declarations, loop and catch variables, lambda and closure parameters), at every
occurrence inside the outermost function that declares them. What never is: the entry point, any
function or class name, globals and anything else named outside a function, fields and attributes
(`obj.x`), methods, keyword-argument names, imported names, macros, library names.

Scope check (tree-sitter has no scope analysis, so this is a conservative stand-in): a name is
renamed only when every occurrence of it in the function lies inside the scope (the nearest
enclosing block or function) of one of its declarations. A name that is also free somewhere in the
function (a global or library name in another block, Python's outer-function read of a name an
inner function assigns) is left alone. Per language, forms this does not model make a name or a
whole function "unsafe" and leave it unchanged: Python `global`, `locals()`/`eval`/`exec`, a class
inside a function; JavaScript object shorthand `{x}` and `eval`/`with`; Go struct literal keys and
package names; C++ names used in macros; Rust shorthand struct fields, match-arm bindings and
inline format arguments (`"{x}"`); Java anonymous/local class bodies and method references.

The result is re-parsed: if renaming introduced a syntax error the original is returned. All six
languages are supported; tests check parse validity, consistency, the entry point, and (Python)
that renamed MBPP solutions still pass their tests.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from tree_sitter import Node, Tree

from .syntax import language, parse

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Spec:
    functions: frozenset[str]  # node types that open a function (the renaming unit is the outermost)
    scopes: frozenset[str]  # block-like node types a declaration is visible in (plus functions)
    containers: frozenset[str]  # "type.field" a declared identifier sits inside (patterns, declarators)
    declarations: frozenset[str]  # "type.field" where a (contained) identifier is declared
    skip: frozenset[str] = frozenset()  # "type.field" occurrences that are not variables (never edited)
    unsafe: frozenset[str] = frozenset()  # "type.field" positions whose name must not be renamed at all
    unsafe_types: tuple[str, ...] = ()  # node types whose text is a name that must not be renamed
    opaque: frozenset[str] = frozenset()  # a function containing one of these node types is left alone
    reserved: frozenset[str] = frozenset()
    dynamic: frozenset[str] = frozenset()  # called by name -> the function sees locals by string: left alone


def _s(*items: str) -> frozenset[str]:
    return frozenset(items)


SPECS: dict[str, Spec] = {
    "python": Spec(
        functions=_s("function_definition", "lambda"), scopes=_s(),  # Python scopes are whole functions
        containers=_s("pattern_list.", "tuple_pattern.", "list_pattern.", "list_splat_pattern.",
                      "dictionary_splat_pattern.", "typed_parameter."),
        declarations=_s("parameters.", "lambda_parameters.", "default_parameter.name", "typed_default_parameter.name",
                        "typed_parameter.", "assignment.left", "augmented_assignment.left", "for_statement.left",
                        "for_in_clause.left", "as_pattern_target.", "named_expression.name"),
        skip=_s("attribute.attribute", "function_definition.name", "class_definition.name"),
        unsafe=_s("keyword_argument.name", "global_statement.*", "dotted_name.*", "aliased_import.alias"),
        opaque=_s("class_definition"), reserved=_s("self", "cls", "_", "__class__"),
        dynamic=_s("locals", "vars", "eval", "exec", "globals")),
    "javascript": Spec(
        functions=_s("function_declaration", "function_expression", "function", "arrow_function",
                     "method_definition", "generator_function_declaration", "generator_function"),
        scopes=_s("statement_block", "for_statement", "for_in_statement", "catch_clause"),
        containers=_s("array_pattern.", "rest_pattern.", "assignment_pattern.left", "object_pattern.",
                      "pair_pattern.value"),
        declarations=_s("formal_parameters.", "variable_declarator.name", "catch_clause.parameter",
                        "arrow_function.parameter", "for_in_statement.left"),
        skip=_s("function_declaration.name", "function_expression.name", "class_declaration.name"),
        unsafe_types=("shorthand_property_identifier", "shorthand_property_identifier_pattern"),
        opaque=_s("with_statement"), reserved=_s("arguments", "undefined", "_"), dynamic=_s("eval")),
    "java": Spec(
        functions=_s("method_declaration", "constructor_declaration", "compact_constructor_declaration",
                     "lambda_expression"),
        scopes=_s("block", "for_statement", "enhanced_for_statement", "catch_clause", "try_with_resources_statement",
                  "switch_block_statement_group"),
        containers=_s(),
        declarations=_s("formal_parameter.name", "variable_declarator.name", "enhanced_for_statement.name",
                        "catch_formal_parameter.name", "resource.name", "inferred_parameters.",
                        "lambda_expression.parameters"),
        skip=_s("method_invocation.name", "field_access.field", "method_declaration.name",
                "constructor_declaration.name", "class_declaration.name", "marker_annotation.name", "annotation.name",
                "element_value_pair.key", "labeled_statement.*", "break_statement.*", "continue_statement.*"),
        unsafe=_s("method_reference.*", "scoped_identifier.*"), opaque=_s("class_body", "record_declaration")),
    "go": Spec(
        functions=_s("function_declaration", "method_declaration", "func_literal"),
        scopes=_s("block", "for_statement", "if_statement", "expression_switch_statement", "type_switch_statement",
                  "communication_case", "expression_case", "type_case", "default_case"),
        containers=_s("expression_list."),
        declarations=_s("parameter_declaration.name", "variadic_parameter_declaration.name",
                        "short_var_declaration.left", "var_spec.name", "const_spec.name", "range_clause.left",
                        "type_switch_statement.alias", "receive_statement.left"),
        skip=_s("function_declaration.name"), reserved=_s("_", "iota")),
    "cpp": Spec(
        functions=_s("function_definition", "lambda_expression"),
        scopes=_s("compound_statement", "for_statement", "for_range_loop", "catch_clause"),
        containers=_s("pointer_declarator.declarator", "reference_declarator.", "array_declarator.declarator",
                      "init_declarator.declarator", "structured_binding_declarator."),
        declarations=_s("parameter_declaration.declarator", "optional_parameter_declaration.declarator",
                        "variadic_parameter_declaration.declarator", "declaration.declarator",
                        "for_range_loop.declarator"),
        skip=_s("qualified_identifier.name", "function_declarator.declarator", "template_function.name")),
    "rust": Spec(
        functions=_s("function_item", "closure_expression"),
        scopes=_s("block", "for_expression", "match_arm", "while_expression", "if_expression"),
        containers=_s("tuple_pattern.", "mut_pattern.", "reference_pattern.", "ref_pattern.", "slice_pattern.",
                      "tuple_struct_pattern."),
        declarations=_s("parameter.pattern", "let_declaration.pattern", "for_expression.pattern", "closure_parameters.",
                        "let_condition.pattern"),
        skip=_s("macro_invocation.macro", "scoped_identifier.name", "scoped_identifier.path", "function_item.name"),
        unsafe=_s("shorthand_field_initializer.*"), unsafe_types=("shorthand_field_identifier",),
        reserved=_s("_", "self")),
}


@dataclass
class Result:
    code: str
    renamed: dict[str, str] = field(default_factory=dict)  # old -> new, over all functions
    status: str = "ok"  # ok | unchanged | parse error | reparse failed


def anonymise(code: str, lang: str, keep: tuple[str, ...] | frozenset[str] = ()) -> Result:
    """Rename the locals of every function in `code`; `keep` names (the entry point) never change."""
    spec = SPECS[lang]
    tree = parse(code, lang)
    if tree.root_node.has_error:
        return Result(code, status="parse error")
    data = code.encode("utf-8")
    groups: dict[int, tuple[Node, list[Node]]] = {}
    file_level: set[str] = set()
    position_unsafe: set[str] = set()
    for node in _identifiers(tree, lang):
        if _at(node, spec.unsafe) or _custom_unsafe(node, lang):
            position_unsafe.add(_text(node))  # file-wide: `f(key=1)` pins f's parameter `key`
        fn = _outermost_function(node, spec)
        if fn is None:
            file_level.add(_text(node))
        else:
            groups.setdefault(fn.id, (fn, []))[1].append(node)
    # A name also seen as a type (Go parses `seen[l[i]]` in some positions as a generic type) is
    # ambiguous to a parser without name resolution: leave it alone.
    as_type = {_text(n) for n, _ in _type_query(lang).captures(tree.root_node)} if _type_query(lang) else set()
    unsafe_names = file_level | position_unsafe | as_type | set(keep) | spec.reserved | _file_unsafe(tree, lang, data)
    edits: list[tuple[int, int, bytes]] = []
    renamed: dict[str, str] = {}
    for fn, idents in groups.values():
        mapping = _function_mapping(fn, idents, spec, lang, unsafe_names, data)
        for node in idents:
            new = mapping.get(_text(node))
            if new is not None and not _at(node, spec.skip):
                edits.append((node.start_byte, node.end_byte, new.encode()))
        renamed.update(mapping)
    if not edits:
        return Result(code, status="unchanged")
    for start, end, new in sorted(edits, reverse=True):
        data = data[:start] + new + data[end:]
    out = data.decode("utf-8")
    if parse(out, lang).root_node.has_error:
        return Result(code, status="reparse failed")
    return Result(out, renamed)


def _function_mapping(fn: Node, idents: list[Node], spec: Spec, lang: str, unsafe_names: set[str],
                      data: bytes) -> dict[str, str]:
    if spec.opaque and _contains(fn, spec.opaque):
        return {}
    unsafe = set(unsafe_names)
    declared: dict[str, list[Node]] = {}  # name -> scope nodes of its declarations
    order: list[str] = []
    for node in idents:
        name = _text(node)
        if name in spec.dynamic and node.parent is not None and node.parent.type in ("call", "call_expression"):
            return {}  # locals()/eval(...) see local names as strings
        if _is_declaration(node, spec):
            if name not in declared:
                order.append(name)
            declared.setdefault(name, []).append(_scope_of(node, spec, fn))
    for t in spec.unsafe_types:
        unsafe.update(_text(n) for n in _descendants_of_type(fn, t))
    for node in idents:  # every occurrence must be inside the scope of one of its declarations
        name = _text(node)
        if name in declared and name not in unsafe and not _at(node, spec.skip):
            if not any(_is_ancestor(scope, node) for scope in declared[name]):
                unsafe.add(name)
    names = [name for name in order if name not in unsafe]
    # New names must not collide with any word that stays; names being renamed away are free, so
    # anonymising twice gives the same text.
    outside = (data[:fn.start_byte] + b" " + data[fn.end_byte:]).decode("utf-8")
    taken = set(_WORD.findall(outside)) | (set(_WORD.findall(_text(fn))) - set(names))
    mapping: dict[str, str] = {}
    i = 0
    for name in names:
        while f"v{i}" in taken:
            i += 1
        mapping[name] = f"v{i}"
        i += 1
    return mapping


# ---- tree helpers ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _ident_query(lang: str):
    return language(lang).query("(identifier) @id")


@functools.lru_cache(maxsize=None)
def _type_query(lang: str):
    try:
        return language(lang).query("(type_identifier) @t")
    except Exception:  # the grammar has no such node type (Python, JavaScript)
        return None


def _identifiers(tree: Tree, lang: str) -> list[Node]:
    return sorted((n for n, _ in _ident_query(lang).captures(tree.root_node)), key=lambda n: n.start_byte)


def _text(node: Node) -> str:
    return node.text.decode("utf-8")


def _field(parent: Node, child: Node) -> str:
    for i, c in enumerate(parent.children):
        if c.id == child.id:
            return parent.field_name_for_child(i) or ""
    return ""


def _at(node: Node, positions: frozenset[str]) -> bool:
    parent = node.parent
    return parent is not None and bool(positions) and _match(parent, node, positions)


def _match(parent: Node, child: Node, positions: frozenset[str]) -> bool:
    """"type.field" matches that field, "type." a child with no field name, "type.*" any child."""
    return f"{parent.type}.*" in positions or f"{parent.type}.{_field(parent, child)}" in positions


def _is_declaration(node: Node, spec: Spec) -> bool:
    child, parent = node, node.parent
    while parent is not None and _match(parent, child, spec.containers):
        child, parent = parent, parent.parent
    return parent is not None and _match(parent, child, spec.declarations)


def _outermost_function(node: Node, spec: Spec) -> Node | None:
    found = None
    parent = node.parent
    while parent is not None:
        if parent.type in spec.functions:
            found = parent
        parent = parent.parent
    return found


def _scope_of(node: Node, spec: Spec, fn: Node) -> Node:
    parent = node.parent
    while parent is not None and parent.id != fn.id:
        if parent.type in spec.scopes or parent.type in spec.functions:
            return parent
        parent = parent.parent
    return fn


def _is_ancestor(scope: Node, node: Node) -> bool:
    return scope.start_byte <= node.start_byte and node.end_byte <= scope.end_byte


def _contains(node: Node, types: frozenset[str]) -> bool:
    return any(True for _ in _walk(node, types))


def _descendants_of_type(node: Node, t: str):
    return _walk(node, frozenset({t}))


def _walk(node: Node, types: frozenset[str]):
    stack = list(reversed(node.children))
    while stack:
        n = stack.pop()
        if n.type in types:
            yield n
        stack.extend(reversed(n.children))


def _custom_unsafe(node: Node, lang: str) -> bool:
    parent = node.parent
    if lang == "go":  # struct literal key `T{x: 1}`: a field name, not the variable x
        return (parent is not None and parent.type == "literal_element" and parent.parent is not None
                and parent.parent.type == "keyed_element" and parent.parent.named_children[0].id == parent.id)
    if lang == "rust":  # bindings in match arms are not modelled
        while parent is not None:
            if parent.type == "match_pattern":
                return True
            parent = parent.parent
    return False


def _file_unsafe(tree: Tree, lang: str, data: bytes) -> set[str]:
    text = data.decode("utf-8")
    if lang == "cpp":  # names a macro body refers to (macros are not parsed)
        return {w for n in _walk(tree.root_node, frozenset({"preproc_arg"})) for w in _WORD.findall(_text(n))}
    if lang == "go":  # package names from imports (`strings.Split`)
        return {m.group(1) for m in re.finditer(r'"(?:[^"]*/)?([A-Za-z_]\w*)"', text)} | \
               {_text(n) for n in _walk(tree.root_node, frozenset({"package_identifier"}))}
    if lang == "rust":  # inline format arguments: println!("{x}")
        return set(re.findall(r"\{([A-Za-z_]\w*)", text))
    return set()
