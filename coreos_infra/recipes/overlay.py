"""Service overlays: ``overlays/<name>/`` with ``overlay.yaml``, a Butane Jinja2 template, files, checks.

Layout of an overlay directory:

``overlay.yaml``
    ``description``, ``roles`` (site host roles that pull the overlay in automatically) and
    ``variables: {NAME: {type, default, doc, required}}``. Types: ``str``, ``int``, ``bool``, ``list``,
    ``map``, ``image`` (a fully qualified, tag-pinned container image) and ``any``.
``butane.yaml.j2``
    A Butane fragment (fcos) rendered with Jinja2 (``StrictUndefined``: every name must exist). The
    context is ``site``, ``host`` (None for a site-wide image), ``target``, ``vars`` (the overlay's
    variables after defaults, recipe and site values), ``build`` (``id``, ``site``, ``host``,
    ``target``) and ``facts`` (derived values, see :mod:`coreos_infra.recipes.render`). The function
    ``render("name.j2")`` renders another template of the overlay with the same context and ``quote``
    turns a value into a YAML/JSON double-quoted string.
``files/``
    Static files, referenced from the template with ``local: NAME`` (paths are relative to ``files/``).
``checks.py``
    pytest-testinfra checks (``def test_...(host)``) that run against any booted host using the overlay.
"""

from __future__ import annotations

import bisect
import json
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from coreos_infra.errors import InputError, Location
from coreos_infra.recipes import checks
from coreos_infra.recipes.model import ROLES, Overlay, OverlayVar
from coreos_infra.recipes.yamlsrc import Node, load_yaml

TEMPLATE = "butane.yaml.j2"
VAR_TYPES = ("str", "int", "bool", "list", "map", "image", "any")


def load_overlay(path: Path, display: str) -> Overlay:
    name = path.name
    meta_path = path / "overlay.yaml"
    if not meta_path.is_file():
        raise InputError("overlay has no overlay.yaml", Location(display))
    m = load_yaml(meta_path, f"{display}/overlay.yaml").mapping(("description", "roles", "variables"))
    description = m.require("description").str()
    roles: tuple[str, ...] = ()
    if (r := m.get("roles")) is not None:
        for item in r.list():
            if item.str() not in ROLES:
                raise item.error(f"unknown role {item.str()!r}", hint=f"roles: {', '.join(ROLES)}")
            roles += (item.str(),)
    variables = []
    if (v := m.get("variables")) is not None:
        vm = v.mapping()
        for var_name in vm:
            variables.append(_variable(var_name, vm.key_node(var_name), vm.items[var_name][1]))
    template = path / TEMPLATE
    if not template.is_file():
        raise InputError(f"overlay has no {TEMPLATE}", Location(display))
    check_file = path / "checks.py"
    return Overlay(
        name=name,
        path=path,
        description=description,
        variables=tuple(variables),
        template=template,
        checks=check_file if check_file.is_file() else None,
        roles=roles,
    )


def _variable(name: str, key: Node, node: Node) -> OverlayVar:
    if not name.isidentifier():
        raise key.error("variable names must be identifiers (letters, digits, _)")
    m = node.mapping(("type", "default", "doc", "required"))
    vtype = "any"
    if (t := m.get("type")) is not None:
        vtype = t.str()
        if vtype not in VAR_TYPES:
            raise t.error(f"unknown variable type {vtype!r}", hint=f"types: {', '.join(VAR_TYPES)}")
    doc = m.require("doc").str()
    required = m.require("required").bool() if "required" in m else False
    default: Any = None
    if (d := m.get("default")) is not None:
        default = convert_var(vtype, d)
    elif not required:
        raise node.error("a variable needs a default or required: true", path=node.child_path("default"))
    return OverlayVar(name=name, type=vtype, default=default, doc=doc, required=required)


def convert_var(vtype: str, node: Node) -> Any:
    """Check one variable value against its declared type and return it as plain data."""
    if vtype == "str":
        return node.str()
    if vtype == "int":
        return node.int()
    if vtype == "bool":
        return node.bool()
    if vtype == "image":
        return checks.image(node)
    if vtype == "list":
        if not node.is_list:
            raise node.error(f"expected a list, got {node.kind()}")
        return node.plain()
    if vtype == "map":
        if not node.is_mapping:
            raise node.error(f"expected a mapping, got {node.kind()}")
        node.mapping()  # duplicate keys
        return node.plain()
    return node.plain()


def check_overlay_vars(overlay: Overlay, node: Node) -> tuple[tuple[str, Any], ...]:
    """Validate ``{var: value}`` given to ``overlay`` (by a recipe or a site); unknown names are errors."""
    names = tuple(v.name for v in overlay.variables)
    m = node.mapping()
    out = []
    for key in m:
        var = overlay.var(key)
        if var is None:
            raise m.key_node(key).error(
                f"unknown variable for overlay {overlay.name}",
                hint=f"variables: {', '.join(names)}" if names else "this overlay has no variables",
            )
        out.append((key, convert_var(var.type, m.require(key))))
    return tuple(out)


def resolve_vars(overlay: Overlay, *layers: tuple[tuple[str, Any], ...], where: str) -> dict[str, Any]:
    """Defaults, then each layer in order (later wins); a required variable nobody set is an error."""
    values: dict[str, Any] = {v.name: v.default for v in overlay.variables}
    for layer in layers:
        values.update(dict(layer))
    for v in overlay.variables:
        if v.required and values.get(v.name) is None:
            raise InputError(
                f"overlay {overlay.name}: required variable {v.name!r} is not set ({v.doc})",
                Location(where),
                hint=f"set it under overlays: [{{name: {overlay.name}, vars: {{{v.name}: ...}}}}]",
            )
    return values


def _quote(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def jinja_environment(overlay: Overlay) -> jinja2.Environment:
    """The Jinja2 environment of an overlay (compiled templates are cached in it; files are re-read
    when they change)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(overlay.path)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=True,
    )
    env.filters["quote"] = _quote
    return env


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered template and, for each line of its output, the template line that wrote it."""

    text: str
    lines: tuple[int, ...]  # template line of each output line (1-based; 0 when unknown)

    def template_line(self, offset: int) -> int | None:
        """The template line that produced the output at ``offset``."""
        i = self.text.count("\n", 0, offset)
        return self.lines[i] or None if i < len(self.lines) else None


def _static_prefix(line: str) -> str:
    """The text of a template line before its first Jinja tag."""
    cut = min((i for i in (line.find("{{"), line.find("{%")) if i >= 0), default=-1)
    return line[:cut] if cut >= 0 else ""


def _map_lines(source: str, text: str, chunk_starts: list[int], chunk_lines: list[int]) -> tuple[int, ...]:
    """Which template line wrote each output line.

    Jinja's debug information names the statement that yields each piece of output, which is coarse
    (one piece can span many template lines). Each output line is therefore looked up in the template
    source, from the last line found (or, entering a loop again, from the statement's line): a verbatim
    line, else a line whose text before its first ``{{``/``{%`` starts the output line; output that
    matches neither (several lines from one expression) keeps the line of the previous one.
    """
    src = source.splitlines()
    out: list[int] = []
    cursor = 0  # index into src
    offset = 0
    for line in text.split("\n"):
        i = bisect.bisect_right(chunk_starts, offset) - 1
        stmt = max(chunk_lines[i] - 1, 0) if i >= 0 else 0
        found = None
        for begin in (cursor, stmt) if stmt < cursor else (cursor,):
            found = next((j for j in range(begin, len(src)) if src[j] == line), None)
            if found is None:
                found = next(
                    (j for j in range(begin, len(src))
                     if (p := _static_prefix(src[j])).strip() and line.startswith(p)),
                    None,
                )  # fmt: skip
            if found is not None:
                break
        if found is not None and line.strip():
            cursor = found
            out.append(found + 1)
        else:
            out.append(out[-1] if out else stmt + 1)
        offset += len(line) + 1
    return tuple(out)


def _render_tracking_lines(template: jinja2.Template, context: dict[str, Any]) -> RenderedTemplate:
    # Jinja compiles a template to a generator; while it is suspended at a yield, its frame's line maps
    # back to the template statement that produces that piece of output.
    gen = template.root_render_func(template.new_context(context))
    parts: list[str] = []
    starts: list[int] = []
    lines: list[int] = []
    pos = 0
    try:
        for chunk in gen:
            frame = getattr(gen, "gi_frame", None)  # a generator (typed as an iterator)
            line = template.get_corresponding_lineno(frame.f_lineno) if frame is not None else 1
            starts.append(pos)
            lines.append(line)
            parts.append(chunk)
            pos += len(chunk)
    except Exception:
        template.environment.handle_exception()  # re-raises with template file names and lines
    text = "".join(parts)
    source = Path(template.filename).read_text() if template.filename else ""
    return RenderedTemplate(text, _map_lines(source, text, starts, lines))


def render_template(
    overlay: Overlay, display_dir: str, context: Mapping[str, Any], env: jinja2.Environment | None = None
) -> str:
    """Render the overlay's Butane template; template errors carry the template's file and line."""
    return render_template_lines(overlay, display_dir, context, env).text


def render_template_lines(
    overlay: Overlay, display_dir: str, context: Mapping[str, Any], env: jinja2.Environment | None = None
) -> RenderedTemplate:
    """:func:`render_template`, also telling which template line wrote each part of the output."""
    env = env or jinja_environment(overlay)
    full: dict[str, Any] = dict(context)

    def render(name: str, **extra: Any) -> str:
        return env.get_template(name).render({**full, **extra})

    full["render"] = render
    try:
        return _render_tracking_lines(env.get_template(TEMPLATE), full)
    except jinja2.TemplateSyntaxError as e:
        where = Location(f"{display_dir}/{e.name or TEMPLATE}", None, e.lineno)
        raise InputError(f"template syntax error: {e.message}", where) from None
    except jinja2.TemplateNotFound as e:
        raise InputError(f"template not found: {e.name}", Location(f"{display_dir}/{TEMPLATE}")) from None
    except jinja2.UndefinedError as e:
        raise InputError(
            f"undefined template variable: {e.message}", _template_location(e, overlay, display_dir)
        ) from None
    except InputError:
        raise
    except Exception as e:  # a filter or test failing on a value
        raise InputError(
            f"template error: {type(e).__name__}: {e}", _template_location(e, overlay, display_dir)
        ) from None


def _template_location(exc: BaseException, overlay: Overlay, display_dir: str) -> Location:
    """Find the innermost traceback frame inside one of the overlay's templates (Jinja2 rewrites them)."""
    root = str(overlay.path)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(root + "/"):
            rel = frame.filename[len(root) + 1 :]
            return Location(f"{display_dir}/{rel}", None, frame.lineno)
    return Location(f"{display_dir}/{TEMPLATE}")


def overlay_files(overlay: Overlay) -> list[Path]:
    """Every file that belongs to the overlay (for the build identity), sorted: what a render can read.

    Symlinked directories (say ``files/conf -> ../shared-conf``) are followed, as the Butane ``local``
    reads and the template loader follow them; a link that leads outside the overlay is refused."""
    root = overlay.path.resolve()

    def inside(p: Path) -> Path:
        if not p.resolve().is_relative_to(root):
            raise InputError(
                f"symbolic link to {p.resolve()} leads outside the overlay {overlay.name}",
                Location(str(p)),
                hint="overlay files must live inside the overlay directory",
            )
        return p

    out = []
    for dirpath, dirnames, filenames in os.walk(overlay.path, followlinks=True):
        directory = inside(Path(dirpath))
        rel = directory.relative_to(overlay.path)
        ancestors = {(overlay.path / rel.parents[i]).resolve() for i in range(len(rel.parts))}
        if directory.resolve() in ancestors:  # a link back up (files/loop -> ..): walked once
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            p = directory / name
            if p.suffix != ".pyc" and p.is_file():
                out.append(inside(p))
    return sorted(out)
