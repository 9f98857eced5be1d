# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's state file ``.cache/lab/<lab>/state.json``: typed, versioned, read and written only here.

Every resource is recorded here *before* it is created, so a state may be partial (a crash halfway
through ``up``): every field but the lab's name may be missing, and ``down`` completes it with a
scan of the host. Schema 1 is the untyped file of the single-file lab tool (no ``schema`` key,
NAT rules as flat lists); it is read and rewritten as schema 2 on the next save.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import paths
from .addressing import lab_id
from .errors import LabError, StateError
from .hostcmd import write_atomic

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class NatRule:
    """An iptables rule of the lab: ``iptables -t TABLE -A CHAIN ARGS...``."""

    table: str
    chain: str
    args: tuple[str, ...]

    def argv(self, verb: str) -> list[str]:
        """``iptables`` argv for ``verb`` (-C check, -A append, -I insert, -D delete)."""
        return ["iptables", "-w", "-t", self.table, verb, self.chain, *self.args]

    def to_dict(self) -> dict:
        return {"table": self.table, "chain": self.chain, "args": list(self.args)}

    @classmethod
    def from_json(cls, data) -> NatRule:
        if isinstance(data, list) and len(data) >= 2 and all(isinstance(x, str) for x in data):  # schema 1
            return cls(data[0], data[1], tuple(data[2:]))
        if isinstance(data, dict):
            args = data.get("args")
            if isinstance(data.get("table"), str) and isinstance(data.get("chain"), str) and isinstance(args, list) \
                    and all(isinstance(x, str) for x in args):
                return cls(data["table"], data["chain"], tuple(args))
        raise ValueError("bad NAT rule %r" % (data,))


@dataclass
class Machine:
    """One machine; its fixed identity (index, address, netns, veth, dirs) and its running supervisor."""

    name: str
    index: int | None = None
    address: str | None = None
    netns: str | None = None
    veth: str | None = None
    dir: str | None = None
    root: str | None = None
    pid: int | None = None
    pid_start: str | None = None
    systemd: str | None = None

    FIELDS = {"index": int, "address": str, "netns": str, "veth": str, "dir": str, "root": str, "pid": int,
              "pid_start": str, "systemd": str}

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.FIELDS}

    @classmethod
    def from_json(cls, name: str, data) -> Machine:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError("machine %s: not an object" % name)
        values = {}
        for key, kind in cls.FIELDS.items():
            value = data.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ValueError("machine %s: %s is not a %s" % (name, key, kind.__name__))
            values[key] = value
        return cls(name=name, **values)


@dataclass
class LabState:
    """What ``up`` created for a lab; ``down`` removes it all."""

    lab: str
    distro: str | None = None
    subnet: str | None = None
    gateway: str | None = None
    bridge: str | None = None
    key: str | None = None
    machines: dict[str, Machine] = field(default_factory=dict)
    nat_rules: list[NatRule] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    inventory: str | None = None
    inventory_sha256: str | None = None

    SCALARS = ("distro", "subnet", "gateway", "bridge", "key", "inventory", "inventory_sha256")

    @property
    def id(self) -> str:
        return lab_id(self.lab)

    def ordered(self) -> list[Machine]:
        """Machines by index (their address order); ones recorded without an index first."""
        return sorted(self.machines.values(), key=lambda m: (m.index or 0, m.name))

    def to_dict(self) -> dict:
        data = {"schema": SCHEMA_VERSION, "lab": self.lab, "id": self.id}
        data.update({key: getattr(self, key) for key in self.SCALARS})
        data["machines"] = {name: machine.to_dict() for name, machine in self.machines.items()}
        data["nat_rules"] = [rule.to_dict() for rule in self.nat_rules]
        data["groups"] = {group: list(members) for group, members in self.groups.items()}
        return data

    @classmethod
    def from_json(cls, data) -> LabState:
        """A state from parsed JSON; ValueError when it is not a lab state, StateError when newer."""
        if not isinstance(data, dict) or not isinstance(data.get("lab"), str):
            raise ValueError("not a lab state")
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise ValueError("bad schema %r" % (schema,))
        if schema > SCHEMA_VERSION:
            raise StateError("%s has schema %d; this lab tool reads schemas up to %d: use the checkout that "
                             "created the lab (or update this one)" % (paths.state_path(data["lab"]), schema, SCHEMA_VERSION))
        state = cls(lab=data["lab"])
        for key in cls.SCALARS:
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError("%s is not a string" % key)
            setattr(state, key, value)
        machines = data.get("machines") or {}
        rules = data.get("nat_rules") or []
        groups = data.get("groups") or {}
        if not isinstance(machines, dict) or not isinstance(rules, list) or not isinstance(groups, dict):
            raise ValueError("machines, nat_rules or groups of the wrong type")
        state.machines = {name: Machine.from_json(name, info) for name, info in machines.items()}
        state.nat_rules = [NatRule.from_json(rule) for rule in rules]
        for group, members in groups.items():
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ValueError("group %s is not a list of names" % group)
        state.groups = {group: list(members) for group, members in groups.items()}
        return state


def load_state(lab: str) -> LabState | None:
    """The lab's state; None when there is none or it is unreadable (``down`` then scans the host).
    Raises StateError for a state written by a newer lab tool."""
    try:
        data = json.loads(paths.state_path(lab).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        state = LabState.from_json(data)
    except (ValueError, TypeError):
        return None
    return state if state.lab == lab else None


def save_state(state: LabState) -> None:
    write_atomic(paths.state_path(state.lab), json.dumps(state.to_dict(), indent=2, sort_keys=True) + "\n", 0o600)


def require_state(lab: str) -> LabState:
    """The state of a lab that is up, or an error saying how to bring it up."""
    state = load_state(lab)
    if state is None and paths.state_path(lab).exists():
        raise LabError("the state file %s of lab %s is unreadable: remove the lab with `python3 tools/lab.py down%s` "
                       "(it finds the lab's resources without it) and bring it up again"
                       % (paths.state_path(lab), lab, paths.lab_flag(lab)))
    if not state or not state.machines:
        raise LabError("lab %s is not up (no %s): start it with `python3 tools/lab.py up%s`"
                       % (lab, paths.state_path(lab), paths.lab_flag(lab)))
    return state


def other_labs(lab: str) -> list[LabState]:
    """The readable states of the other labs sharing this cache (for their subnets and ids)."""
    result = []
    for path in sorted(paths.CACHE_ROOT.glob("*/state.json")):
        if path.parent.name == lab:
            continue
        try:
            other = load_state(path.parent.name)
        except StateError:
            continue
        if other is not None:
            result.append(other)
    return result
