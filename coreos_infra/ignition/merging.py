"""Ignition's config merge (``ignition.config.merge``): a child config merged over a parent.

- structs merge field by field; a scalar set in the child wins;
- keyed lists (files by path, units by name, partitions by number or label, ...): a parent entry whose key is
  in the child's list is merged in place, one whose key is in a sibling list sharing the key space
  (files/directories/links) is dropped, the rest are kept; then the child's new entries are appended;
- ``append``, filesystem/luks/raid ``options`` lists are concatenated.

:func:`merge_with_origins` also tells, for every list entry of the result, which side and which path it came
from, so reports on the result can be mapped back to their source.
"""

from __future__ import annotations

import copy
from typing import Any

from coreos_infra.ignition.report import PathT
from coreos_infra.ignition.rules import APPEND_ONLY, SHARED_SPACE, item_key
from coreos_infra.ignition.types import FIELDS, ListOf

PARENT = "parent"
CHILD = "child"
Origins = dict[PathT, tuple[str, PathT]]


def _key(type_name: str, item: Any) -> Any:
    k = item_key(type_name, item)
    if isinstance(item, dict) and k is None:
        return ("unkeyed", id(item))
    return k


def _merge_struct(
    parent: dict[str, Any],
    child: dict[str, Any],
    type_name: str,
    rpath: PathT,
    ppath: PathT,
    cpath: PathT,
    origins: Origins,
) -> dict[str, Any]:
    fields = FIELDS.get(type_name, {})
    out: dict[str, Any] = {}
    for key in list(parent) + [k for k in child if k not in parent]:
        pv, cv = parent.get(key), child.get(key)
        field = fields.get(key)
        if field is None:
            out[key] = copy.deepcopy(cv if key in child else pv)
            continue
        ftype = field.type
        if isinstance(ftype, ListOf):
            plist, clist = pv or [], cv or []
            if (type_name, key) in APPEND_ONLY:
                merged = [copy.deepcopy(x) for x in plist] + [copy.deepcopy(x) for x in clist]
                for i in range(len(plist)):
                    origins[(*rpath, key, i)] = (PARENT, (*ppath, key, i))
                for j in range(len(clist)):
                    origins[(*rpath, key, len(plist) + j)] = (CHILD, (*cpath, key, j))
                out[key] = merged
                continue
            space = SHARED_SPACE.get((type_name, key))
            sibling_keys: set[Any] = set()
            if space is not None:
                for (tn, other), sp in SHARED_SPACE.items():
                    if tn == type_name and sp == space and other != key:
                        other_type = fields[other].type
                        assert isinstance(other_type, ListOf)
                        sibling_keys.update(_key(other_type.item, x) for x in child.get(other) or [])
            child_index: dict[Any, int] = {}
            for j, citem in enumerate(clist):
                child_index.setdefault(_key(ftype.item, citem), j)
            merged_list: list[Any] = []
            used: set[int] = set()
            for i, pitem in enumerate(plist):
                k = _key(ftype.item, pitem)
                if k in child_index:
                    j = child_index[k]
                    used.add(j)
                    citem = clist[j]
                    if type_name == "Resource" and key == "httpHeaders" and citem.get("value") is None:
                        continue  # a child header without a value removes the parent's
                    r = (*rpath, key, len(merged_list))
                    origins[r] = (CHILD, (*cpath, key, j))
                    if isinstance(pitem, dict) and isinstance(citem, dict):
                        merged_list.append(
                            _merge_struct(
                                pitem, citem, ftype.item, r, (*ppath, key, i), (*cpath, key, j), origins
                            )
                        )
                    else:
                        merged_list.append(copy.deepcopy(citem))
                elif k in sibling_keys:
                    continue
                else:
                    origins[(*rpath, key, len(merged_list))] = (PARENT, (*ppath, key, i))
                    merged_list.append(copy.deepcopy(pitem))
            for j, citem in enumerate(clist):
                if j in used:
                    continue
                if type_name == "Resource" and key == "httpHeaders" and citem.get("value") is None:
                    continue
                origins[(*rpath, key, len(merged_list))] = (CHILD, (*cpath, key, j))
                merged_list.append(copy.deepcopy(citem))
            out[key] = merged_list
        elif isinstance(pv, dict) and isinstance(cv, dict):
            out[key] = _merge_struct(pv, cv, ftype, (*rpath, key), (*ppath, key), (*cpath, key), origins)
        else:
            out[key] = copy.deepcopy(cv if key in child and cv is not None else pv)
    return out


def merge_with_origins(parent: dict[str, Any], child: dict[str, Any]) -> tuple[dict[str, Any], Origins]:
    origins: Origins = {}
    result = _merge_struct(parent, child, "Config", (), (), (), origins)
    return result, origins


def merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Merge ``child`` over ``parent`` with Ignition's semantics; neither input is modified."""
    return merge_with_origins(parent, child)[0]
