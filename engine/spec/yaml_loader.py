"""Strict YAML reading with a source map. Owns bytes -> plain data; must not touch meaning of keys.

The loader never calls ``yaml.load``: it walks ``yaml.parse`` events and builds dicts, lists and
scalars itself, so anchors/aliases, tags, duplicate keys, deep nesting and YAML 1.1 coercions
(``NO`` -> False, ``0755`` -> 493, dates) are refused or kept as strings before anything is
expanded (RELIABILITY V12, V13, V15; cases Y1-Y6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

from engine.errors import KeyPath, Problem, SpecError
from engine.spec.sourcemap import Location, SourceMap

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml", "resolve_plain_scalar"]

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_NODES = 100_000
_MAX_PROBLEMS = 100

_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(
    r"[-+]?(?:(?:0|[1-9][0-9]*)?\.[0-9]+(?:[eE][-+]?[0-9]+)?"
    r"|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?[eE][-+]?[0-9]+)"
)
_MAX_INT_DIGITS = 4000  # below Python's int/str conversion limit (4300)
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_NO_VALUE = object()  # key slot of a mapping entry whose key is unusable (bad or duplicate)


class _Stop(Exception):
    """Internal: a fatal problem was recorded; stop reading events."""


def resolve_plain_scalar(text: str) -> object:
    """Resolve an unquoted scalar: only ``true``/``false``, ``null``/``~``/empty, decimal ints and floats.

    >>> [resolve_plain_scalar(s) for s in ["true", "NO", "1.10", "0755", "~", "2024-01-01"]]
    [True, 'NO', 1.1, '0755', None, '2024-01-01']
    """
    if text == "true":
        return True
    if text == "false":
        return False
    if text in ("", "~", "null"):
        return None
    if _INT.fullmatch(text) and len(text) <= _MAX_INT_DIGITS:
        return int(text)
    if _FLOAT.fullmatch(text):
        value = float(text)
        if value not in (float("inf"), float("-inf")):
            return value
    return text


def _line_col(text: str | bytes, index: int) -> tuple[int, int]:
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text.count(newline, 0, index) + 1
    column = index - (text.rfind(newline, 0, index) + 1) + 1
    return line, column


def _decode(data: bytes | str, filename: str) -> str:
    """Bytes or str -> str without BOM, or SpecError (size cap, invalid UTF-8, lone surrogates)."""
    too_big = Problem(filename, 1, 1, (), "file larger than 1 MiB", "split the spec into several files")
    if len(data) > MAX_BYTES:
        raise SpecError(problems=[too_big])
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, col = _line_col(data, exc.start)
            msg = f"file is not valid UTF-8 (byte offset {exc.start})"
            raise SpecError(problems=[Problem(filename, line, col, (), msg, "save the file as UTF-8")]) from None
    else:
        text = data
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            line, col = _line_col(text, exc.start)
            msg = f"file contains invalid Unicode (character offset {exc.start})"
            raise SpecError(problems=[Problem(filename, line, col, (), msg)]) from None
        if size > MAX_BYTES:
            raise SpecError(problems=[too_big])
    return text[1:] if text.startswith("\ufeff") else text


class _Frame:
    """An open mapping or sequence while events stream in."""

    __slots__ = ("value", "path", "record", "is_map", "is_key", "key", "key_loc", "expect_key", "seen")

    def __init__(self, value: dict | list, path: KeyPath, record: bool, is_key: bool) -> None:
        self.value = value
        self.path = path
        self.record = record
        self.is_map = isinstance(value, dict)
        self.is_key = is_key
        self.key: object = _NO_VALUE
        self.key_loc: Location | None = None
        self.expect_key = True
        self.seen: dict[str, int] = {}


class _Composer:
    """Builds plain Python data from parse events, recording locations and problems."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.smap = SourceMap()
        self.problems: list[Problem] = []
        self.stack: list[_Frame] = []
        self.root: object = None
        self.nodes = 0
        self.documents = 0

    def loc(self, event: yaml.Event) -> Location:
        mark = event.start_mark
        return Location(self.filename, mark.line + 1, mark.column + 1)

    def problem(self, event: yaml.Event, path: KeyPath, message: str, hint: str | None = None) -> None:
        loc = self.loc(event)
        self.problems.append(Problem(self.filename, loc.line, loc.column, path, message, hint))
        if len(self.problems) >= _MAX_PROBLEMS:
            raise _Stop

    def run(self, events: Iterable[yaml.Event]) -> object:
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self.problem(event, (), "expected one YAML document, found a second one",
                                 "remove the '---' separator or split into two files")
                    raise _Stop
                loc = self.loc(event)
                self.smap.add((), loc, loc)
            elif isinstance(event, yaml.AliasEvent):
                self.node_started(event, None)
            elif isinstance(event, yaml.ScalarEvent):
                self.node_started(event, None)
            elif isinstance(event, yaml.SequenceStartEvent):
                self.node_started(event, [])
            elif isinstance(event, yaml.MappingStartEvent):
                self.node_started(event, {})
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = self.stack.pop()
                self.attach(frame.value, frame.is_key)
        if not self.smap.entries:
            self.smap.add((), Location(self.filename, 1, 1), Location(self.filename, 1, 1))
        return self.root

    def slot(self, event: yaml.Event) -> tuple[KeyPath, bool, bool]:
        """Path of the node starting at ``event``, whether to record it, whether it is a mapping key."""
        if not self.stack:
            return (), True, False
        parent = self.stack[-1]
        if not parent.is_map:
            path = parent.path + (len(parent.value),)
            if parent.record:
                loc = self.loc(event)
                self.smap.add(path, loc, loc)
            return path, parent.record, False
        if parent.expect_key:
            return parent.path, False, True
        if isinstance(parent.key, str):
            path = parent.path + (parent.key,)
            if parent.record:
                assert parent.key_loc is not None
                self.smap.add(path, parent.key_loc, self.loc(event))
            return path, parent.record, False
        return parent.path + ("?",), False, False

    def node_started(self, event: yaml.NodeEvent, collection: dict | list | None) -> None:
        self.nodes += 1
        path, record, is_key = self.slot(event)
        if self.nodes > MAX_NODES:
            self.problem(event, path, f"too many YAML nodes (more than {MAX_NODES:,})")
            raise _Stop
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            self.problem(event, path, "YAML anchors/aliases are not allowed", "write the value out in full")
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = "!!" + tag[len(_YAML_TAG_PREFIX):] if tag.startswith(_YAML_TAG_PREFIX) else tag
            self.problem(event, path, f"YAML tags are not allowed (found '{shown}')",
                         "remove the tag; quote the value if you mean a string")
        if collection is not None:
            if len(self.stack) >= MAX_DEPTH:
                self.problem(event, path, f"nesting too deep (more than {MAX_DEPTH} levels)")
                raise _Stop
            if is_key:
                self.key_problem(event, path, "a mapping" if isinstance(collection, dict) else "a list")
            self.stack.append(_Frame(collection, path, record, is_key))
            return
        value: object = None
        if isinstance(event, yaml.ScalarEvent):
            plain = event.implicit[0] and not event.style  # C parser: "", Python: None
            value = resolve_plain_scalar(event.value) if plain else event.value
        if is_key:
            self.set_key(event, value)
        else:
            self.attach(value, False)

    def key_problem(self, event: yaml.Event, path: KeyPath, found: str) -> None:
        self.problem(event, path, f"mapping keys must be strings (found {found})", "quote the key")
        self.stack[-1].key = _NO_VALUE
        self.stack[-1].expect_key = False

    def set_key(self, event: yaml.Event, key: object) -> None:
        parent = self.stack[-1]
        if not isinstance(key, str):
            kind = {bool: "boolean", int: "integer", float: "number"}.get(type(key), "null")
            text = getattr(event, "value", "") or "empty"
            self.key_problem(event, parent.path, f"{kind} {text}" if kind != "null" else "null")
            return
        parent.expect_key = False
        first_line = parent.seen.get(key)
        if first_line is not None:
            self.problem(event, parent.path + (key,), f"duplicate key '{key}' (first at line {first_line})",
                         "remove one of them")
            parent.key = _NO_VALUE
            return
        loc = self.loc(event)
        parent.seen[key] = loc.line
        parent.key = key
        parent.key_loc = loc

    def attach(self, value: object, was_key: bool) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        if was_key:
            return  # a collection used as a key: already reported, parent.expect_key is False
        if not parent.is_map:
            parent.value.append(value)
            return
        if isinstance(parent.key, str):
            parent.value[parent.key] = value
        parent.key = _NO_VALUE
        parent.expect_key = True


def _syntax_hint(problem: str, context: str) -> str | None:
    if "'\\t'" in problem or "tab" in problem.lower():
        return "indent with spaces, not tabs"
    if "expected ',' or ']'" in problem:
        return "is a '[' left unclosed?"
    if "expected ',' or '}'" in problem:
        return "is a '{' left unclosed?"
    if "quoted scalar" in context:
        return "is a quote left unclosed?"
    if "<block end>" in problem or "block mapping" in context:
        return "check indentation and quoting on this line; inside '...' write '' for one quote"
    if "mapping values are not allowed" in problem:
        return "quote values that contain ': '"
    return None


def _syntax_problem(text: str, filename: str, exc: yaml.YAMLError) -> Problem:
    """A positioned, readable problem from a PyYAML error (Y1)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _line_col(text, max(exc.position, 0))
        char = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
        message = f"unacceptable character #x{char:04x}: {exc.reason}"
        return Problem(filename, line, col, (), message, "remove control characters")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        message = f"invalid YAML: {problem}"
        context = exc.context or ""
        if exc.context and exc.problem and exc.context_mark is not None:
            cm = exc.context_mark
            if mark is None or (cm.line, cm.column) != (mark.line, mark.column):
                message += f" ({exc.context} started at line {cm.line + 1}, column {cm.column + 1})"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Problem(filename, line, col, (), message, _syntax_hint(problem, context))
    return Problem(filename, 1, 1, (), f"invalid YAML: {exc}")


def _readable_error(text: str, filename: str, fast_exc: yaml.YAMLError) -> Problem:
    """Re-read with the pure-Python parser, whose messages name the offending character."""
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            for _ in yaml.parse(text, Loader=yaml.SafeLoader):
                pass
        except yaml.YAMLError as exc:
            return _syntax_problem(text, filename, exc)
        except RecursionError:
            pass
    return _syntax_problem(text, filename, fast_exc)


def load_yaml(data: bytes | str, filename: str) -> tuple[object, SourceMap]:
    """Parse one YAML document strictly; return the plain data and where every key came from.

    Raises ``SpecError`` carrying every problem found (duplicate keys, anchors, tags, non-string
    keys, syntax errors, size/depth caps). Never raises anything else for any input.
    """
    text = _decode(data, filename)
    composer = _Composer(filename)
    try:
        root = composer.run(yaml.parse(text, Loader=_FAST_LOADER))
    except _Stop:
        root = None
    except yaml.YAMLError as exc:
        root = None
        if "nesting depth" in str(exc):  # newer libyaml caps flow nesting itself
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            composer.problems.append(Problem(filename, line, col, (), f"nesting too deep (more than {MAX_DEPTH} levels)"))
        else:
            composer.problems.append(_readable_error(text, filename, exc))
    except RecursionError:  # pragma: no cover - the composer is iterative; belt and braces
        root = None
        composer.problems.append(Problem(filename, 1, 1, (), f"nesting too deep (more than {MAX_DEPTH} levels)"))
    if composer.problems:
        raise SpecError(problems=composer.problems)
    return root, composer.smap
