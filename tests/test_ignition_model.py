"""The Ignition model: parse, validate, merge, serialize; field tables checked against upstream schemas."""

# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from shared_fixtures import corpus, needs

from coreos_infra import ignition
from coreos_infra.errors import CoreosInfraError
from coreos_infra.ignition.jsonfmt import go_syntax_error
from coreos_infra.ignition.types import FIELDS, ListOf, fields_for, minor

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = corpus("ignition-schemas")
needs_schemas = needs("ignition-schemas")


# --- parse -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ignition.SUPPORTED_VERSIONS)
def test_parse_every_supported_version(version: str) -> None:
    cfg = ignition.parse(json.dumps({"ignition": {"version": version}}).encode())
    assert ignition.spec_version(cfg) == version


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        (b'{"ignition": {"version": "3.4.0"}', "unexpected end of JSON input", 1, 33),
        (b'{\n  "ignition": x\n}', "invalid character 'x' looking for beginning of value", 2, 15),
        (b'{"a" 1}', "invalid character '1' after object key", 1, 6),
        (b'{"a": 1 "b"}', "invalid character '\"' after object key:value pair", 1, 9),
        (b"[1, 2,]", "invalid character ']' looking for beginning of value", 1, 7),
        (b"{} x", "invalid character 'x' after top-level value", 1, 4),
        (b'{"a": tru}', "invalid character '}' in literal true (expecting 'e')", 1, 10),
    ],
)
def test_parse_syntax_errors_have_go_messages_and_positions(
    text: bytes, message: str, line: int, col: int
) -> None:
    with pytest.raises(ignition.IgnitionError) as e:
        ignition.parse(text, filename="x.ign")
    assert e.value.reason == message
    assert (e.value.location.line, e.value.location.column) == (line, col)
    assert str(e.value).startswith(f"x.ign:{line}:{col}: ")
    assert isinstance(e.value, CoreosInfraError)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("2.2.0", "unsupported config version 2.2.0"),
        ("3.9.0", "unsupported config version 3.9.0"),
        ("3.4", "couldn't parse"),
    ],
)
def test_parse_rejects_unknown_versions(version: str, message: str) -> None:
    with pytest.raises(ignition.IgnitionError, match=message):
        ignition.parse(json.dumps({"ignition": {"version": version}}).encode())


def test_parse_rejects_wrong_types() -> None:
    with pytest.raises(
        ignition.IgnitionError, match=r"\$\.storage\.files\.0\.mode: cannot unmarshal string"
    ):
        ignition.parse(b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/a","mode":"0644"}]}}')


def test_go_syntax_error_accepts_valid_json() -> None:
    assert go_syntax_error('{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"]}') is None


# --- validate ----------------------------------------------------------------------------------------------


def _v(version: str = "3.5.0", **sections: Any) -> dict[str, Any]:
    return {"ignition": {"version": version}, **sections}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (_v(storage={"files": [{"path": "a"}]}), "error at $.storage.files.0.path: path not absolute"),
        (
            _v(storage={"files": [{"path": "/a/"}]}),
            "error at $.storage.files.0.path: path is not fully simplified",
        ),
        (
            _v(storage={"directories": [{"path": "/a"}], "links": [{"path": "/a", "target": "/b"}]}),
            "error at $.storage.links.0: duplicate entry defined",
        ),
        (
            _v(storage={"files": [{"path": "/a", "mode": 0o10000}]}),
            "error at $.storage.files.0.mode: illegal file mode",
        ),
        (
            _v(storage={"files": [{"path": "/a", "contents": {"source": "data:,a b"}}]}),
            "error at $.storage.files.0.contents.source: invalid data character",
        ),
        (
            _v(storage={"files": [{"path": "/a", "contents": {"compression": "xz", "source": "data:,a"}}]}),
            "error at $.storage.files.0.contents.compression: invalid compression method",
        ),
        (
            _v(storage={"files": [{"path": "/a", "contents": {"verification": {"hash": "md5-00"}}}]}),
            "error at $.storage.files.0.contents.verification.hash: source must be specified if verification is specified",
        ),
        (
            _v(
                storage={
                    "files": [
                        {
                            "path": "/a",
                            "contents": {"source": "s3://b/k", "verification": {"hash": "sha256-00"}},
                        }
                    ]
                }
            ),
            "error at $.storage.files.0.contents.verification.hash: incorrect size for hash sum",
        ),
        (
            _v(
                storage={
                    "files": [
                        {
                            "path": "/a",
                            "contents": {"source": "data:,x", "httpHeaders": [{"name": "a", "value": "b"}]},
                        }
                    ]
                }
            ),
            "error at $.storage.files.0.contents.httpHeaders: cannot use HTTP headers with this source scheme",
        ),
        (
            _v(storage={"links": [{"path": "/l", "target": "/t"}], "files": [{"path": "/l/f"}]}),
            "error at $.storage.files.0: file path includes link in config",
        ),
        (
            _v(
                storage={
                    "filesystems": [{"device": "/dev/a", "label": "averyveryverylonglabel", "format": "xfs"}]
                }
            ),
            "error at $.storage.filesystems.0.label: filesystem labels cannot be longer than 12 characters when using xfs",
        ),
        (
            _v(storage={"disks": [{"device": "/dev/a", "partitions": [{"number": 1, "typeGuid": "nope"}]}]}),
            'error at $.storage.disks.0.partitions.0.typeGuid: doesn\'t match the form "01234567-89AB-CDEF-EDCB-A98765432101"',
        ),
        (
            _v(
                storage={
                    "luks": [{"name": "r", "device": "/dev/a", "clevis": {"tang": [{"url": "https://t"}]}}]
                }
            ),
            "error at $.storage.luks.0.clevis.tang.0.thumbprint: thumbprint is required",
        ),
        (
            _v(storage={"raid": [{"name": "md", "level": "raid0", "devices": ["/dev/a"], "spares": 1}]}),
            "error at $.storage.raid.0.level: spares unsupported for linear and raid0 arrays",
        ),
        (
            _v(systemd={"units": [{"name": "a.service", "enabled": True, "contents": "[Service]\n"}]}),
            'warning at $.systemd.units.0.contents: unit "a.service" is enabled, but has no install section so enable does nothing',
        ),
        (
            _v(ignition={"version": "3.5.0", "proxy": {"httpProxy": "ftp://p"}}),
            "error at $.ignition.proxy.httpProxy: proxies must be http(s)",
        ),
        (_v("3.1.0", storage={"luks": []}), "warning at $.storage.luks: unused key luks"),
        (
            _v(storage={"links": [{"path": "/l", "target": "/t", "hard": True, "user": {"name": "u"}}]}),
            "warning at $.storage.links.0.user.name: user/group ignored for hard link",
        ),
        (
            _v(
                storage={
                    "directories": [{"path": "/d/h/x"}],
                    "links": [{"path": "/d/h", "target": "x", "hard": True}],
                }
            ),
            "error at $.storage.links.0: hard link target is a directory",
        ),
        (
            _v(
                storage={
                    "disks": [{"device": "/dev/a", "partitions": [{"number": 1}]}],
                    "filesystems": [{"device": "/dev/a", "format": "xfs"}],
                }
            ),
            "warning at $.storage.filesystems.0.device: filesystem overwrites partitioned device",
        ),
    ],
)
def test_validate_rules(config: dict[str, Any], expected: str) -> None:
    assert expected in [str(r) for r in ignition.validate(config)]


def test_validate_clean_config_has_no_reports() -> None:
    cfg = _v(
        storage={
            "files": [
                {"path": "/etc/a", "mode": 420, "contents": {"source": "https://e/x", "compression": "gzip"}}
            ],
            "links": [{"path": "/etc/l", "target": "a"}],
        },
        systemd={"units": [{"name": "a.service", "enabled": True, "contents": "[Install]\nWantedBy=x\n"}]},
    )
    assert ignition.validate(cfg) == []
    assert not ignition.has_errors(ignition.validate(cfg))


# --- merge -------------------------------------------------------------------------------------------------


def test_merge_semantics() -> None:
    parent = _v(
        storage={
            "files": [{"path": "/a", "mode": 420, "append": [{"source": "data:,1"}]}, {"path": "/b"}],
            "disks": [{"device": "/dev/a", "partitions": [{"label": "x", "sizeMiB": 1}, {"number": 2}]}],
            "filesystems": [{"device": "/dev/a", "mountOptions": ["ro"]}],
        },
        systemd={"units": [{"name": "u.service", "contents": "[Unit]\n", "enabled": True}]},
    )
    child = _v(
        "3.5.0",
        storage={
            "files": [{"path": "/a", "append": [{"source": "data:,2"}], "user": {"name": "core"}}],
            "directories": [{"path": "/b"}],
            "disks": [{"device": "/dev/a", "partitions": [{"label": "x", "sizeMiB": 5}, {"label": "y"}]}],
            "filesystems": [{"device": "/dev/a", "mountOptions": ["noatime"]}],
        },
        systemd={"units": [{"name": "u.service", "enabled": False}]},
    )
    merged = ignition.merge(parent, child)
    assert merged["storage"]["files"] == [
        {
            "path": "/a",
            "mode": 420,
            "append": [{"source": "data:,1"}, {"source": "data:,2"}],
            "user": {"name": "core"},
        }
    ]
    assert merged["storage"]["directories"] == [{"path": "/b"}]  # /b file dropped: sibling list has its key
    assert merged["storage"]["disks"][0]["partitions"] == [
        {"label": "x", "sizeMiB": 5},
        {"number": 2},
        {"label": "y"},
    ]
    assert merged["storage"]["filesystems"][0]["mountOptions"] == ["ro", "noatime"]
    assert merged["systemd"]["units"] == [{"name": "u.service", "contents": "[Unit]\n", "enabled": False}]
    assert parent["storage"]["files"][0]["append"] == [{"source": "data:,1"}]  # inputs untouched


def test_merge_http_header_without_value_removes() -> None:
    res = {"source": "https://x", "httpHeaders": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    parent = _v(storage={"files": [{"path": "/a", "contents": res}]})
    child = _v(storage={"files": [{"path": "/a", "contents": {"httpHeaders": [{"name": "A"}]}}]})
    merged = ignition.merge(parent, child)
    assert merged["storage"]["files"][0]["contents"]["httpHeaders"] == [{"name": "B", "value": "2"}]


# --- serialize ---------------------------------------------------------------------------------------------


def test_dumps_order_omitempty_and_escaping() -> None:
    cfg = {
        "storage": {
            "files": [
                {
                    "mode": 420,
                    "contents": {"source": "data:,x", "compression": "", "verification": {}},
                    "path": "/a<b>&",
                    "overwrite": False,
                    "append": [],
                }
            ],
            "links": [],
        },
        "passwd": {"users": [{"uid": 5, "shell": "/bin/sh", "sshAuthorizedKeys": ["k"], "name": "u"}]},
        "ignition": {"version": "3.5.0", "config": {}},
    }
    assert ignition.dumps(cfg) == (
        b'{"ignition":{"version":"3.5.0"},"passwd":{"users":[{"name":"u","sshAuthorizedKeys":["k"],'
        b'"shell":"/bin/sh","uid":5}]},"storage":{"files":[{"overwrite":false,"path":"/a\\u003cb\\u003e\\u0026",'
        b'"contents":{"compression":"","source":"data:,x"},"mode":420}]}}\n'
    )
    pretty = ignition.dumps(cfg, pretty=True).decode()
    assert pretty.startswith('{\n  "ignition": {\n    "version": "3.5.0"\n  },\n  "passwd": {\n')
    assert pretty.endswith("}\n") and " \n" not in pretty


def test_dumps_always_fields_and_zero_number() -> None:
    cfg = {
        "ignition": {"version": "3.5.0"},
        "storage": {"disks": [{"partitions": [{"number": 0, "label": "x"}]}]},
    }
    assert b'"disks":[{"device":"","partitions":[{"label":"x"}]}]' in ignition.dumps(cfg)


def test_round_trip_keeps_unknown_keys_last() -> None:
    text = b'{"ignition":{"version":"3.0.0"},"zzz":1,"storage":{"files":[{"path":"/a"}]}}'
    cfg = ignition.parse(text)
    assert (
        ignition.dumps(cfg)
        == b'{"ignition":{"version":"3.0.0"},"storage":{"files":[{"path":"/a"}]},"zzz":1}\n'
    )
    assert [str(r) for r in ignition.validate(cfg)] == ["warning at $.zzz: unused key zzz"]


# --- the schema tables against upstream's JSON schemas ----------------------------------------------------


def _schema_props(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Properties of a schema node, following $ref and allOf."""
    if "$ref" in node:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _schema_props(schema, target)
    props = dict(node.get("properties") or {})
    for sub in node.get("allOf") or []:
        props.update(_schema_props(schema, sub))
    return props


def _item(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


@needs_schemas
@pytest.mark.parametrize("version", ignition.SUPPORTED_VERSIONS)
def test_field_tables_match_upstream_schema(version: str) -> None:
    schema = json.loads((SCHEMAS / f"ignition-{version}.json").read_text())
    spec_minor = minor(version)
    mismatches = []

    def walk(type_name: str, node: dict[str, Any], where: str) -> None:
        props = _schema_props(schema, node)
        ours = {f.key: f for f in fields_for(type_name, spec_minor)}
        if set(props) != set(ours):
            mismatches.append((where, sorted(set(props) - set(ours)), sorted(set(ours) - set(props))))
        for key, field in ours.items():
            if key not in props:
                continue
            sub = _item(schema, props[key])
            if isinstance(field.type, ListOf):
                if field.type.item in FIELDS:
                    walk(field.type.item, _item(schema, sub["items"]), f"{where}.{key}[]")
            elif field.type in FIELDS:
                walk(field.type, sub, f"{where}.{key}")

    walk("Config", schema, "$")
    assert mismatches == []


@needs("ignition-schemas", "butane-cases")
def test_case_outputs_match_json_schema() -> None:
    cases = corpus("butane-cases")
    from coreos_infra.butane import translate

    checked = 0
    for meta in json.loads((cases / "INDEX.json").read_text()):
        if meta["expect"] != "success" or meta.get("files_dir"):
            continue
        config = translate((cases / meta["name"] / "input.bu").read_bytes()).config
        schema = json.loads((SCHEMAS / f"ignition-{config['ignition']['version']}.json").read_text())
        jsonschema.Draft4Validator(schema).validate(config)
        checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:text/plain;base64", "unterminated parameter sequence"),  # butane's wording for this
        ("data:text/plain;", "unterminated parameter sequence"),
        ("data:", "missing comma before data"),
        ("data:abc", "missing media type slash"),
        ("data:foo/bar,x", "invalid media type"),
        ("data:text/plain;foo,x", "expected base64, got foo"),
        ("data:text/plain;a=b", "missing comma before data"),
        ('data:text/plain;a="b', "unclosed quoted string"),
        ("data:text/plain;a=b c,x", "invalid character for parameter value"),
        ("data:text/pl ain,x", "invalid character for media subtype"),
        ("data:;base64,YW%3D", "invalid data character"),
    ],
)
def test_invalid_data_urls_use_upstream_wording(url: str, message: str) -> None:
    from coreos_infra.ignition.urls import decode_data_url

    with pytest.raises(ValueError) as e:
        decode_data_url(url)
    assert str(e.value) == message


def test_valid_data_urls_with_parameters() -> None:
    from coreos_infra.ignition.urls import decode_data_url

    assert decode_data_url('data:text/plain;charset=utf-8;q="a;b";base64,YWJj') == b"abc"
    assert decode_data_url("data:x-custom/thing,%41") == b"A"
    assert decode_data_url("data:;base64,YW\nJj") == b"abc"  # Go's decoder skips newlines


def test_butane_reports_invalid_data_url_like_upstream() -> None:
    from coreos_infra.butane import ButaneError, translate

    bu = b"variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/x\n      contents:\n"
    with pytest.raises(ButaneError) as e:
        translate(bu + b"        source: data:text/plain;base64\n")
    assert str(e.value).splitlines()[0] == (
        "error at $.storage.files.0.contents.source, line 7 col 17: unterminated parameter sequence"
    )
