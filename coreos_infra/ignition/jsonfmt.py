"""Ignition JSON in and out, byte-compatible with Go's ``encoding/json`` as Butane and Ignition use it.

- :func:`normalize` puts every object's keys in the Go struct order and applies ``omitempty``: absent values,
  empty lists and empty objects disappear; ``""``/``false``/``0`` set on a pointer field stay.
- :func:`dumps` writes compact (``{"a":1}``) or pretty (2-space indent) JSON plus one ``\\n``, escaping
  like Go (``<`` → ``\\u003c``, ``\\b`` → ``\\u0008``, U+2028, invalid UTF-8 → ``\\ufffd``).
- :func:`go_syntax_error` reproduces Go's JSON syntax error messages and offsets.
"""

from __future__ import annotations

import re
from typing import Any

from coreos_infra.ignition.types import FIELDS, ListOf

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    o = ord(ch)
    if 0xD800 <= o <= 0xDFFF:  # a byte that was not valid UTF-8 (surrogateescape)
        return "\\ufffd"
    return f"\\u{o:04x}"


def encode_string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, list | dict) and not v)


def normalize(value: Any, type_name: str | ListOf = "Config") -> Any:
    """A copy of ``value`` with Go key order and ``omitempty`` applied."""
    if isinstance(type_name, ListOf):
        if not isinstance(value, list):
            return value
        return [normalize(v, type_name.item) for v in value]
    if type_name not in FIELDS or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    fields = FIELDS[type_name]
    for key, field in fields.items():
        if key not in value or value[key] is None:
            if field.always:
                out[key] = ""
            continue
        v = normalize(value[key], field.type)
        if _is_empty(v):
            if field.always:
                out[key] = ""
            continue
        if field.zero_omit and v in ("", 0) and not isinstance(v, bool):
            continue
        out[key] = v
    for key, v in value.items():  # keys unknown to the schema: kept, after the known ones
        if key not in fields and not _is_empty(v):
            out[key] = v
    return out


def _dump(value: Any, out: list[str], indent: str | None, level: int) -> None:
    if isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(repr(int(value)) if value.is_integer() else repr(value))
    elif isinstance(value, str):
        out.append(encode_string(value))
    elif value is None:
        out.append("null")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        first = True
        for k, v in value.items():
            if not first:
                out.append(",")
            first = False
            if indent is not None:
                out.append("\n" + indent * (level + 1))
            out.append(encode_string(str(k)))
            out.append(": " if indent is not None else ":")
            _dump(v, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (level + 1))
            _dump(v, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("]")
    else:
        raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(config: dict[str, Any], pretty: bool = False) -> bytes:
    """Serialize an Ignition config like Butane does: Go key order, omitempty, Go escaping, final newline."""
    out: list[str] = []
    _dump(normalize(config), out, "  " if pretty else None, 0)
    out.append("\n")
    return "".join(out).encode("utf-8", "surrogateescape")


# --- Go-compatible JSON syntax errors -------------------------------------------------------------------


def _quote_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    r = repr(c)[1:-1]
    if c == "\\":
        r = "\\\\"
    return f"'{r}'"


class _GoSyntaxError(Exception):
    def __init__(self, msg: str, offset: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.offset = offset


class _Scanner:
    """A strict JSON checker that fails with the same message and offset as Go's encoding/json scanner."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def err(self, context: str) -> _GoSyntaxError:
        if self.i >= len(self.s):
            return _GoSyntaxError("unexpected end of JSON input", len(self.s.encode()))
        return _GoSyntaxError(
            f"invalid character {_quote_char(self.s[self.i])} {context}",
            len(self.s[: self.i + 1].encode()),
        )

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def value(self) -> None:
        self.ws()
        c = self.peek()
        if c == "{":
            self.i += 1
            self.ws()
            if self.peek() == "}":
                self.i += 1
                return
            while True:
                self.ws()
                if self.peek() != '"':
                    raise self.err("looking for beginning of object key string")
                self.string()
                self.ws()
                if self.peek() != ":":
                    raise self.err("after object key")
                self.i += 1
                self.value()
                self.ws()
                c = self.peek()
                if c == ",":
                    self.i += 1
                    continue
                if c == "}":
                    self.i += 1
                    return
                raise self.err("after object key:value pair")
        if c == "[":
            self.i += 1
            self.ws()
            if self.peek() == "]":
                self.i += 1
                return
            while True:
                self.value()
                self.ws()
                c = self.peek()
                if c == ",":
                    self.i += 1
                    continue
                if c == "]":
                    self.i += 1
                    return
                raise self.err("after array element")
        if c == '"':
            self.string()
            return
        if c == "-" or c.isdigit():
            self.number()
            return
        for word in ("true", "false", "null"):
            if c == word[0]:
                self.i += 1
                for expect in word[1:]:
                    if self.peek() != expect:
                        raise self.err(f"in literal {word} (expecting {_quote_char(expect)})")
                    self.i += 1
                return
        raise self.err("looking for beginning of value")

    def string(self) -> None:
        self.i += 1
        while True:
            c = self.peek()
            if c == "":
                raise self.err("")
            if c == '"':
                self.i += 1
                return
            if c == "\\":
                self.i += 1
                e = self.peek()
                if e == "u":
                    self.i += 1
                    for _ in range(4):
                        if self.peek() == "" or self.peek() not in "0123456789abcdefABCDEF":
                            raise self.err("in \\u hexadecimal character escape")
                        self.i += 1
                    continue
                if e == "" or e not in '"\\/bfnrt':
                    raise self.err("in string escape code")
                self.i += 1
                continue
            if ord(c) < 0x20:
                raise self.err("in string literal")
            self.i += 1

    def number(self) -> None:
        if self.peek() == "-":
            self.i += 1
            if not self.peek().isdigit():
                raise self.err("in numeric literal")
        if self.peek() == "0":
            self.i += 1
        else:
            while self.peek().isdigit():
                self.i += 1
        if self.peek() == ".":
            self.i += 1
            if not self.peek().isdigit():
                raise self.err("after decimal point in numeric literal")
            while self.peek().isdigit():
                self.i += 1
        if self.peek() in ("e", "E"):
            self.i += 1
            if self.peek() in ("+", "-"):
                self.i += 1
            if not self.peek().isdigit():
                raise self.err("in exponent of numeric literal")
            while self.peek().isdigit():
                self.i += 1


def go_syntax_error(text: str) -> tuple[str, int] | None:
    """Go's JSON syntax error for ``text`` as (message, byte offset), or None when the JSON is valid."""
    sc = _Scanner(text)
    try:
        sc.value()
        sc.ws()
        if sc.i < len(sc.s):
            raise sc.err("after top-level value")
    except _GoSyntaxError as e:
        return e.msg, e.offset
    return None


def offset_to_line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line/column of the byte before ``offset`` (Go's SyntaxError.Offset counts bytes read)."""
    before = data[: max(offset - 1, 0)]
    line = before.count(b"\n") + 1
    col = len(before) - (before.rfind(b"\n") + 1) + 1
    return line, col
