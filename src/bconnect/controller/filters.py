"""A go-bexpr compatible subset for list ``filter`` expressions (pure).

Supported, as Boundary documents them::

    "/item/status" == "active"
    "/item/user_id" != "u_1234567890" and ("/item/type" == "tcp" or not "/item/name" is empty)
    "/item/name" matches "^prod-"        "/item/name" contains "db"
    "u_123" in "/item/authorized_actions"  "/item/description" is not empty

Selectors are JSON pointers into ``{"item": <resource>}`` (quoted or bare). Values are
compared as strings, as go-bexpr does for the string fields Boundary filters on.

``matches`` uses RE2 (linear time, as go-bexpr does), so a caller's pattern cannot stall
the controller; expressions nest at most ``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships neither stubs nor py.typed

Predicate = Callable[[dict[str, Any]], bool]
MAX_DEPTH = 32
MAX_LENGTH = 4096


class FilterError(ValueError):
    """The filter expression does not parse; the message points at the problem."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str", "word", "op", "(", ")"
    text: str
    pos: int


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>==|!=)|(?P<lp>\()|(?P<rp>\))'
    r"|(?P<word>[^\s()\"=!`]+))"
)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected character at position {pos}: {text[pos]!r}")
        if m.group("str") is not None:
            raw = m.group("str")
            value = raw[1:-1]
            if raw[0] == '"':
                value = re.sub(r"\\(.)", r"\1", value)
            tokens.append(_Tok("str", value, m.start("str")))
        elif m.group("op") is not None:
            tokens.append(_Tok("op", m.group("op"), m.start("op")))
        elif m.group("lp") is not None:
            tokens.append(_Tok("(", "(", m.start("lp")))
        elif m.group("rp") is not None:
            tokens.append(_Tok(")", ")", m.start("rp")))
        else:
            tokens.append(_Tok("word", m.group("word"), m.start("word")))
        pos = m.end()
    return tokens


def _lookup(doc: Any, selector: str) -> Any:
    if not selector.startswith("/"):
        # go-bexpr also accepts dotted selectors such as item.status
        selector = "/" + selector.replace(".", "/")
    cur = doc
    for part in selector.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict):
            if part not in cur:
                return None
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise FilterError(f"filter expression is longer than {MAX_LENGTH} characters")
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"filter expression nests deeper than {MAX_DEPTH} levels")

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def word(self, offset: int = 0) -> str | None:
        tok = self.peek(offset)
        return tok.text.lower() if tok and tok.kind == "word" else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError("unexpected end of filter expression")
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if not self.toks:
            raise FilterError("filter expression is empty")
        pred = self.parse_or()
        tok = self.peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok.text!r} at position {tok.pos}")
        return pred

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.word() == "or":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda d: any(p(d) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.word() == "and":
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else (lambda d: all(p(d) for p in parts))

    def parse_not(self) -> Predicate:
        if self.word() == "not":
            self.take()
            self.nest()
            inner = self.parse_not()
            self.depth -= 1
            return lambda d: not inner(d)
        tok = self.peek()
        if tok is not None and tok.kind == "(":
            self.take()
            self.nest()
            inner = self.parse_or()
            self.depth -= 1
            close = self.take()
            if close.kind != ")":
                raise FilterError(f"expected ')' at position {close.pos}")
            return inner
        return self.parse_match()

    def operand(self) -> str:
        tok = self.take()
        if tok.kind not in ("str", "word"):
            raise FilterError(f"expected a selector or value at position {tok.pos}")
        return tok.text

    def parse_match(self) -> Predicate:
        left = self.operand()
        tok = self.peek()
        if tok is None:
            raise FilterError("expected an operator after " + repr(left))
        negate = False
        if tok.kind == "op":
            self.take()
            right = self.operand()
            if tok.text == "==":
                return lambda d: _as_text(_lookup(d, left)) == right
            return lambda d: _as_text(_lookup(d, left)) != right
        op = self.word()
        if op == "is":
            self.take()
            if self.word() == "not":
                self.take()
                negate = True
            if self.word() != "empty":
                raise FilterError("expected 'empty' after 'is'")
            self.take()
            return lambda d: _empty(_lookup(d, left)) != negate
        if op == "not":
            self.take()
            negate = True
            op = self.word()
        if op in ("matches", "contains", "in"):
            self.take()
            right = self.operand()
            if op == "matches":
                try:
                    rx = re2.compile(right)
                except re2.error as exc:
                    raise FilterError(f"bad regular expression {right!r}: {exc}") from None
                return lambda d: bool(rx.search(_as_text(_lookup(d, left)))) != negate
            if op == "contains":
                return lambda d: _contains(_lookup(d, left), right) != negate
            return lambda d: _contains(_lookup(d, right), left) != negate
        raise FilterError(f"unknown operator at position {tok.pos}: {tok.text!r}")


def _contains(container: Any, value: str) -> bool:
    if isinstance(container, list):
        return value in (_as_text(v) for v in container)
    if isinstance(container, dict):
        return value in container
    return value in _as_text(container)


@functools.lru_cache(maxsize=256)
def compile_filter(text: str) -> Predicate:
    """Compile a filter; the predicate takes ``{"item": resource_dict}``. Predicates hold
    no state, so one compiled filter serves every request that sends the same text (a
    target's worker filter is compiled once, not at every authorization)."""
    return _Parser(text).parse()
