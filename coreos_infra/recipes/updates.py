"""The site's ``updates`` section (Zincati strategy, windows, FleetLock) and the staggering of update
windows over the hosts, so that hosts sharing a role never reboot for an update at the same time."""

from __future__ import annotations

import re
from dataclasses import replace

from coreos_infra.errors import InputError
from coreos_infra.recipes import checks
from coreos_infra.recipes.model import DAYS, ROLES, Host, Updates, UpdateWindow
from coreos_infra.recipes.yamlsrc import Node


# ------------------------------------------------------------------------------------------ updates
def _window(node: Node) -> UpdateWindow:
    m = node.mapping(("days", "start_time", "length_minutes"))
    days_node = m.require("days")
    days: tuple[str, ...] = ()
    for d in days_node.list():
        day = d.str()
        if day not in DAYS:
            raise d.error(f"not a day ({', '.join(DAYS)})")
        if day in days:
            raise d.error(f"day {day} listed twice")
        days += (day,)
    if not days:
        raise days_node.error("at least one day is required")
    start = checks.time_of_day(m.require("start_time"))
    length = checks.int_range(m.require("length_minutes"), 60, 1, 7 * 1440)
    return UpdateWindow(days=days, start_time=start, length_minutes=length)


def parse_updates(node: Node, site_name: str) -> Updates:
    m = node.mapping(
        ("strategy", "windows", "time_zone", "fleet_lock", "rollout_wariness", "container_auto_update")
    )
    strategy = "periodic"
    if (s := m.get("strategy")) is not None:
        strategy = s.str()
        if strategy not in ("periodic", "fleet_lock", "immediate"):
            raise s.error("expected one of: periodic, fleet_lock, immediate")
    windows = checks.each(m.get("windows"), _window)
    if strategy == "periodic" and not windows:
        raise node.error("strategy periodic needs at least one window", path=node.child_path("windows"))
    if strategy != "periodic" and windows:
        raise m.require("windows").error(f"windows are only used with strategy periodic (not {strategy})")
    tz = checks.timezone(t) if (t := m.get("time_zone")) is not None else ""
    url, group = "", ""
    if (fl := m.get("fleet_lock")) is not None:
        if strategy != "fleet_lock":
            raise fl.error(f"fleet_lock is only used with strategy fleet_lock (not {strategy})")
        flm = fl.mapping(("url", "group"))
        url_node = flm.require("url")
        url = url_node.str()
        if not re.match(r"^https?://[^\s/]+", url):
            raise url_node.error("not an http(s) URL")
        group = site_name
        if (g := flm.get("group")) is not None:
            group = g.str()
            if not re.match(r"^[a-zA-Z0-9.-]+$", group):
                raise g.error("FleetLock group names may only contain letters, digits, '.' and '-'")
    elif strategy == "fleet_lock":
        raise node.error("strategy fleet_lock needs fleet_lock.url", path=node.child_path("fleet_lock"))
    if strategy == "fleet_lock" and not re.match(r"^[a-zA-Z0-9.-]+$", group):
        group = re.sub(r"[^a-zA-Z0-9.-]", "-", group)
    wariness = None
    if (w := m.get("rollout_wariness")) is not None:
        value = w.plain()
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise w.error("rollout_wariness must be a number between 0.0 and 1.0")
        wariness = float(value)
    auto = m.require("container_auto_update").bool() if "container_auto_update" in m else True
    return Updates(
        strategy=strategy,
        windows=windows,
        time_zone=tz,
        fleet_lock_url=url,
        fleet_lock_group=group,
        rollout_wariness=wariness,
        container_auto_update=auto,
    )


def stagger(
    hosts: tuple[Host, ...], updates: Updates, updates_node: Node, hosts_node: Node
) -> tuple[Host, ...]:
    """Give every host an update window so that hosts sharing a role never have overlapping windows.

    A host may pin a window with ``update_window: N`` (an index into ``updates.windows``). The others
    get the first window that fits, trying in order; a backtracking search finds an assignment if one
    exists. Roles with a single host do not constrain anything.
    """
    windows = updates.windows
    items = hosts_node.list()
    pinned: dict[int, int] = {}
    for i, h in enumerate(hosts):
        if h.window_pin is not None:
            idx = h.window_pin
            if not 0 <= idx < len(windows):
                node = items[i].mapping().require("update_window")
                raise node.error(f"no such update window (updates.windows has {len(windows)})")
            pinned[i] = idx

    def conflicts(a: Host, b: Host) -> bool:
        return any(role in b.roles for role in a.roles)

    def solve(indices: list[int]) -> dict[int, int] | None:
        assigned: dict[int, int] = {}
        budget = [200_000]

        def rec(k: int) -> bool:
            if k == len(indices):
                return True
            budget[0] -= 1
            if budget[0] < 0:
                return False
            i = indices[k]
            # Spread hosts over the windows: start with the one after the previous host's.
            options = [pinned[i]] if i in pinned else [(k + j) % len(windows) for j in range(len(windows))]
            for w in options:
                if all(
                    not (conflicts(hosts[i], hosts[j]) and windows[w].overlaps(windows[assigned[j]]))
                    for j in assigned
                ):
                    assigned[i] = w
                    if rec(k + 1):
                        return True
                    del assigned[i]
            return False

        return dict(assigned) if rec(0) else None

    result = solve(list(range(len(hosts))))
    if result is None:
        where = updates_node.child_path("windows")
        for role in ROLES:
            group = [i for i, h in enumerate(hosts) if role in h.roles]
            if len(group) > 1 and solve(group) is None:
                names = ", ".join(hosts[i].name for i in group)
                raise InputError(
                    f"cannot stagger updates: the {role} hosts ({names}) need {len(group)} update windows "
                    f"that do not overlap, but updates.windows has only "
                    f"{_max_disjoint(windows)} such window(s)",
                    updates_node.location(where),
                    hint="add windows on other days/times, or unpin update_window on those hosts",
                )
        raise InputError(
            "cannot stagger updates: no assignment of update windows keeps hosts that share a role apart",
            updates_node.location(where),
        )
    return tuple(replace(h, update_window=windows[result[i]]) for i, h in enumerate(hosts))


def check_no_pins(hosts: tuple[Host, ...], hosts_node: Node, strategy: str) -> None:
    for i, h in enumerate(hosts):
        if h.window_pin is not None:
            node = hosts_node.list()[i].mapping().require("update_window")
            raise node.error(f"update_window needs updates.strategy periodic (not {strategy})")


def check_unstaggered(hosts: tuple[Host, ...], root: Node) -> None:
    """Without an updates section every host updates immediately: refuse that for redundant hosts."""
    for role in ROLES:
        group = [h.name for h in hosts if role in h.roles]
        if len(group) > 1:
            raise root.error(
                f"missing updates section: the {role} hosts ({', '.join(group)}) would all reboot as soon "
                "as an update lands",
                path="updates",
                hint="add updates: {strategy: periodic, windows: [...]} or a fleet_lock server",
            )


def _max_disjoint(windows: tuple[UpdateWindow, ...]) -> int:
    best = 0
    n = len(windows)
    for mask in range(1, 1 << min(n, 16)):
        chosen = [windows[i] for i in range(n) if mask >> i & 1]
        if len(chosen) > best and all(
            not a.overlaps(b) for x, a in enumerate(chosen) for b in chosen[x + 1 :]
        ):
            best = len(chosen)
    return best
