"""Source URL checks of Ignition: allowed schemes, S3 ARNs and RFC 2397 data URLs."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse

ERR_INVALID_SCHEME = "invalid url scheme"
ERR_INVALID_URL = "unable to parse url"

_TOKEN = re.compile(r"^[!#$&'*+\-.^_`|~0-9A-Za-z]+$")
# characters allowed in the data part: RFC 2396 uric (reserved, unreserved, escaped)
_URIC = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'();/?:@&=+$,%")
_HEX = set("0123456789abcdefABCDEF")
_S3_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:s3:::[^/]+/.+$")
_S3_ARN_AP = re.compile(r"^arn:aws[a-zA-Z-]*:s3:[a-z0-9-]+:\d{12}:accesspoint/[^/]+/object/.+$")


def decode_data_url(url: str) -> bytes:
    """Decode an RFC 2397 ``data:`` URL as Ignition does; raise ValueError with Ignition's message."""
    if not url.startswith("data:"):
        raise ValueError("missing data prefix")
    rest = url[5:]
    comma = rest.find(",")
    if comma < 0:
        raise ValueError("missing comma")
    header, data = rest[:comma], rest[comma + 1 :]
    params = header.split(";")
    mediatype, params = params[0], params[1:]
    if mediatype:
        if "/" not in mediatype:
            raise ValueError("missing media type slash")
        typ, _, sub = mediatype.partition("/")
        if not _TOKEN.match(typ) or not _TOKEN.match(sub):
            raise ValueError("invalid media type")
    is_base64 = False
    for i, p in enumerate(params):
        if p == "base64" and i == len(params) - 1:
            is_base64 = True
            continue
        attr, eq, value = p.partition("=")
        if not eq or not _TOKEN.match(attr):
            raise ValueError("invalid media type parameter")
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
    raw = urllib.parse.unquote_to_bytes(data)
    if is_base64:
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as e:
            raise ValueError(f"illegal base64 data: {e}") from None
    return raw


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
