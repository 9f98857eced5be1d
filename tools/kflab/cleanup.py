# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``down`` (and removing one machine) must do, as a pure plan of typed actions.

The plan merges two sources: the state file (which may be missing, partial or corrupt) and a
scan of the host that selects only resources carrying the lab's own id or name. ``teardown``
gathers the scan and executes the plan; nothing here touches the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import paths
from .addressing import bridge_name, is_lab_link, is_lab_netns, nat_comment
from .state import LabState, Machine, NatRule


@dataclass(frozen=True)
class StopMachine:
    """Power a machine off (over ssh when it has an address), then SIGTERM/SIGKILL its supervisor."""

    name: str
    address: str | None
    pid: int | None
    pid_start: str | None


@dataclass(frozen=True)
class KillNetnsProcesses:
    """SIGKILL whatever still runs in a machine's network namespace."""

    netns: str


@dataclass(frozen=True)
class Unmount:
    path: str


@dataclass(frozen=True)
class DeleteNetns:
    netns: str


@dataclass(frozen=True)
class DeleteLink:
    """A veth end or the bridge."""

    name: str


@dataclass(frozen=True)
class DeleteRule:
    rule: NatRule


@dataclass(frozen=True)
class RestoreIpForward:
    """Put the host's ip_forward back (only once no lab bridge is left)."""

    value: str


@dataclass(frozen=True)
class RemoveTree:
    """Remove a machine's directory (nothing may stay mounted below it)."""

    path: str


@dataclass(frozen=True)
class RemoveLabDir:
    """Remove the lab's directory and the inventory ``up`` wrote, unless an earlier action failed."""

    path: str


Action = StopMachine | KillNetnsProcesses | Unmount | DeleteNetns | DeleteLink | DeleteRule | RestoreIpForward | RemoveTree | RemoveLabDir


@dataclass
class HostSnapshot:
    """Everything of the kind the lab creates that exists on the host, whoever made it."""

    nspawn_roots: dict[int, str] = field(default_factory=dict)  # pid: its -D directory
    links: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    rules: list[NatRule] = field(default_factory=list)
    ip_forward_before: str | None = None


@dataclass
class HostScan:
    """The lab's own resources found on the host (see ``select_lab_resources``)."""

    pids: list[int] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    nat_rules: list[NatRule] = field(default_factory=list)
    ip_forward_before: str | None = None


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def select_lab_resources(lab: str, snapshot: HostSnapshot) -> HostScan:
    """The part of ``snapshot`` that belongs to ``lab`` and to no other lab: nspawn processes and mounts
    under its own directory, links and namespaces carrying its id, rules carrying its exact comment."""
    directory = str(paths.lab_dir(lab))
    comment = nat_comment(lab)
    return HostScan(
        pids=sorted(pid for pid, root in snapshot.nspawn_roots.items() if _under(root, directory) and root != directory),
        links=[link for link in snapshot.links if is_lab_link(lab, link)],
        netns=[ns for ns in snapshot.netns if is_lab_netns(lab, ns)],
        mounts=[mount for mount in snapshot.mounts if _under(mount, directory)],
        nat_rules=[rule for rule in snapshot.rules if comment in rule.args],
        ip_forward_before=snapshot.ip_forward_before,
    )


def _merged(recorded: list, found: list, key=None) -> list:
    """Recorded items first (in their order), then found ones not recorded (sorted)."""
    result = []
    for item in recorded:
        if item and item not in result:
            result.append(item)
    result.extend(sorted((item for item in found if item not in result), key=key))
    return result


def _teardown(machines: list[Machine], extra_pids: list[int], netns: list[str], mounts: list[str],
              links: list[str]) -> list[Action]:
    """Stop, kill, unmount (deepest first), delete namespaces, then links: the order ``down`` needs."""
    actions: list[Action] = [StopMachine(m.name, m.address, m.pid, m.pid_start) for m in machines]
    known = {m.pid for m in machines if m.pid}
    actions.extend(StopMachine("pid %d" % pid, None, pid, None) for pid in sorted(set(extra_pids) - known))
    actions.extend(KillNetnsProcesses(ns) for ns in netns)
    actions.extend(Unmount(path) for path in sorted(mounts, key=lambda p: p.count("/"), reverse=True))
    actions.extend(DeleteNetns(ns) for ns in netns)
    actions.extend(DeleteLink(link) for link in links)
    return actions


def plan_cleanup(lab: str, state: LabState | None, scan: HostScan) -> list[Action]:
    """Ordered actions removing everything of ``lab``: from its state (may be None or partial) and
    the scan of the host. The lab's directory goes last."""
    state = state or LabState(lab=lab)
    machines = state.ordered()
    netns = _merged([m.netns for m in machines], scan.netns)
    mounts = _merged([m.root for m in machines], scan.mounts)
    bridge = state.bridge or bridge_name(lab)
    links = _merged([m.veth for m in machines], [link for link in scan.links if link != bridge_name(lab)])
    if state.bridge or bridge_name(lab) in scan.links:
        links.append(bridge)
    actions = _teardown(machines, scan.pids, netns, mounts, links)
    actions.extend(DeleteRule(rule) for rule in _merged(state.nat_rules, scan.nat_rules, key=lambda r: (r.table, r.chain, r.args)))
    if scan.ip_forward_before is not None:
        actions.append(RestoreIpForward(scan.ip_forward_before))
    actions.append(RemoveLabDir(str(paths.lab_dir(lab))))
    return actions


def plan_machine_removal(machine: Machine, stray_pids: list[int]) -> list[Action]:
    """Actions removing one machine of a running lab (``up`` with fewer machines): ``stray_pids`` are
    nspawn processes found under its root besides its recorded supervisor."""
    netns = [machine.netns] if machine.netns else []
    mounts = [machine.root] if machine.root else []
    links = [machine.veth] if machine.veth else []
    actions = _teardown([machine], [], netns, mounts, links)
    actions[1:1] = [StopMachine("%s (nspawn)" % machine.name, None, pid, None) for pid in stray_pids if pid != machine.pid]
    if machine.dir:
        actions.append(RemoveTree(machine.dir))
    return actions
