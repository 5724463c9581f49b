"""Source URL checks of Ignition: allowed schemes, S3 ARNs and RFC 2397 data URLs."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

ERR_INVALID_SCHEME = "invalid url scheme"
ERR_INVALID_URL = "unable to parse url"

# characters allowed in the data part: RFC 2396 uric (reserved, unreserved, escaped)
_URIC = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'();/?:@&=+$,%")
_HEX = set("0123456789abcdefABCDEF")
_S3_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:s3:::[^/]+/.+$")
_S3_ARN_AP = re.compile(r"^arn:aws[a-zA-Z-]*:s3:[a-z0-9-]+:\d{12}:accesspoint/[^/]+/object/.+$")


_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
_DISCRETE_TYPES = ("text", "image", "audio", "video", "application", "message", "multipart")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n")


def _is_token(c: str) -> bool:
    """An RFC 2045 token character: ASCII, not a control, not white space, not a tspecial."""
    return c != "" and ord(c) < 0x7F and ord(c) >= 0x20 and c != " " and c not in _TSPECIALS


class _HeaderLexer:
    """The media type and parameters of a data URL, checked in the order (and with the messages) of the
    Go lexer Ignition uses (github.com/vincent-petithory/dataurl): ``data:[type/subtype][;attr=value]*
    [;base64],``. ``""`` stands for the end of the input."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.base64 = False

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        c = self.text[self.pos]
        self.pos += 1
        return c

    def run(self) -> int:
        """Lex up to the comma before the data; return the data's offset. Raises ValueError."""
        c = self.next()
        if c == ";":
            return self.parameter()
        if c == ",":
            return self.pos
        if c == "":
            raise ValueError("missing comma before data")
        if c in "xX":
            if self.next() == "-":
                return self.media_type(x_token=True)
            return self.media_type(x_token=False)
        if _is_token(c):
            return self.media_type(x_token=False)
        raise ValueError("invalid character after data prefix")

    def media_type(self, *, x_token: bool) -> int:
        while True:
            c = self.next()
            if c == "/":
                typ = self.text[: self.pos - 1]
                if not x_token and not typ.startswith(_DISCRETE_TYPES):
                    raise ValueError("invalid media type")
                return self.subtype()
            if c == "":
                raise ValueError("missing media type slash")
            if not _is_token(c):
                raise ValueError("invalid character for media type")

    def subtype(self) -> int:
        while True:
            c = self.next()
            if c == ";":
                return self.parameter()
            if c == ",":
                return self.pos
            if c == "":
                raise ValueError("incomplete media type")
            if not _is_token(c):
                raise ValueError("invalid character for media subtype")

    def parameter(self) -> int:
        start = self.pos
        c = self.next()
        if c in ("", "=", ","):
            raise ValueError("unterminated parameter sequence")
        if not _is_token(c):
            raise ValueError("invalid character for parameter attribute")
        while True:
            c = self.next()
            if c == "=":
                return self.value()
            if c == ",":
                attr = self.text[start : self.pos - 1]
                if attr != "base64":
                    raise ValueError(f"expected base64, got {attr}")
                self.base64 = True
                return self.pos
            if c == "":
                raise ValueError("unterminated parameter sequence")
            if not _is_token(c):
                raise ValueError("invalid character for parameter attribute")

    def value(self) -> int:
        c = self.next()
        if c == '"':
            while True:
                c = self.next()
                if c == "":
                    raise ValueError("unclosed quoted string")
                if c == "\\":
                    if self.next() > "\x7f":
                        raise ValueError("invalid escaped character")
                    continue
                if c == '"':
                    return self.after_value()
                if c > "\x7f":
                    raise ValueError("invalid character for parameter value")
        if c == "":
            raise ValueError("missing comma before data")
        if not _is_token(c):
            raise ValueError("invalid character for parameter value")
        while True:
            c = self.next()
            if c in (";", ","):
                self.pos -= 1
                return self.after_value()
            if c == "":
                raise ValueError("missing comma before data")
            if not _is_token(c):
                raise ValueError("invalid character for parameter value")

    def after_value(self) -> int:
        c = self.next()
        if c == ";":
            return self.parameter()
        if c == ",":
            return self.pos
        if c == "":
            raise ValueError("missing comma before data")
        raise ValueError("expected semicolon or comma")


def decode_data_url(url: str) -> bytes:
    """Decode an RFC 2397 ``data:`` URL as Ignition does; raise ValueError with Ignition's message."""
    if not url.startswith("data:"):
        raise ValueError("missing data prefix")
    lexer = _HeaderLexer(url[5:])
    data = url[5 + lexer.run() :]
    if lexer.base64:
        if any(ch not in _BASE64_CHARS for ch in data):
            raise ValueError("invalid data character")
        try:
            return base64.b64decode(data.replace("\n", ""), validate=True)
        except binascii.Error as e:
            raise ValueError(f"illegal base64 data: {e}") from None
    for ch in data:
        if ch not in _URIC:
            raise ValueError("invalid data character")
    i = 0
    while i < len(data):
        if data[i] == "%":
            seq = data[i + 1 : i + 3]
            if len(seq) < 2 or any(c not in _HEX for c in seq):
                raise ValueError("rfc2396: invalid char 0x25 in unescape sequence")
            i += 3
        else:
            i += 1
    return urllib.parse.unquote_to_bytes(data)


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOST_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:[]@")


def go_url_parses(url: str) -> bool:
    """Whether Go's ``url.Parse`` accepts ``url`` (the checks that matter for configs)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    scheme, colon, rest = url.partition(":")
    if colon and "/" not in scheme and "?" not in scheme and "#" not in scheme:
        if not scheme:
            return False  # missing protocol scheme
        if not _SCHEME.match(scheme):
            return False  # first path segment in URL cannot contain colon
    else:
        rest = url
    if colon and not rest.startswith("/") and scheme and _SCHEME.match(scheme):
        return True  # opaque URL (data:, arn:...): not unescaped by url.Parse
    body = rest.split("#", 1)[0]
    path_part = body.split("?", 1)[0]
    if path_part.startswith("//"):
        authority = path_part[2:].split("/", 1)[0]
        host = authority.rsplit("@", 1)[-1]
        if any(c not in _HOST_OK for c in host):
            return False
    i = 0
    while i < len(path_part):
        if path_part[i] == "%":
            if len(path_part) < i + 3 or any(c not in _HEX for c in path_part[i + 1 : i + 3]):
                return False
            i += 3
        else:
            i += 1
    return True


def validate_url(url: str) -> str | None:
    """Ignition's check of a resource ``source``: None when fine, else the error message. ``""`` is fine."""
    if url == "":
        return None
    if url.startswith("arn:"):
        if _S3_ARN.match(url) or _S3_ARN_AP.match(url):
            return None
        return "invalid S3 ARN format"
    if not go_url_parses(url):
        return ERR_INVALID_URL
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return ERR_INVALID_URL
    scheme = u.scheme.lower()
    if scheme in ("http", "https", "tftp", "gs"):
        return None
    if scheme == "s3":
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        if "versionId" in q and any(v == "" for v in q["versionId"]):
            return "invalid S3 object VersionId"
        return None
    if scheme == "data":
        try:
            decode_data_url(url)
        except ValueError as e:
            return str(e)
        return None
    return ERR_INVALID_SCHEME


def validate_http_url(url: str) -> str | None:
    if not go_url_parses(url):
        return ERR_INVALID_URL
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return ERR_INVALID_URL
    if u.scheme not in ("http", "https"):
        return ERR_INVALID_SCHEME
    return None
