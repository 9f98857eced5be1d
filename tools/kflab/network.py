# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's network: a bridge holding the gateway address, ip_forward, iptables rules commented with
the lab's name (MASQUERADE of its subnet, FORWARD accepts for its bridge), and per machine a network
namespace whose eth0 is a veth into the bridge."""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path

from . import paths
from .addressing import nat_comment, parse_nameservers, parse_routes, prefix_length, veth_peer_name
from .hostcmd import progress, run, write_atomic
from .state import LabState, Machine, NatRule, other_labs, save_state

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def list_links() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [link["ifname"] for link in json.loads(out or "[]")]


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_rules() -> list[NatRule]:
    """Every appended iptables rule of the nat and filter tables."""
    found = []
    for table in ("nat", "filter"):
        out = run(["iptables", "-w", "-t", table, "-S"], check=False).stdout
        for line in out.splitlines():
            if line.startswith("-A "):
                args = shlex.split(line)
                found.append(NatRule(table, args[1], tuple(args[2:])))
    return found


def is_lab_rule(lab: str, rule: NatRule) -> bool:
    """A rule carrying exactly the lab's comment (``kubeforge-lab:lab`` is not ``kubeforge-lab:lab-2``)."""
    return nat_comment(lab) in rule.args


def used_networks(lab: str) -> list[str]:
    """Networks a new lab subnet must not overlap: host routes, nameservers, the other labs' subnets."""
    used = parse_routes(run(["ip", "-j", "route", "show", "table", "all"]).stdout)
    with contextlib.suppress(OSError):
        used.extend(parse_nameservers(Path("/etc/resolv.conf").read_text(encoding="utf-8")))
    used.extend(other.subnet for other in other_labs(lab) if other.subnet)
    return used


def lab_rules(state: LabState) -> list[NatRule]:
    """The iptables rules a lab needs, each carrying its comment so ``down`` finds them without state."""
    comment = ("-m", "comment", "--comment", nat_comment(state.lab))
    return [
        NatRule("nat", "POSTROUTING", ("-s", state.subnet, "!", "-d", state.subnet, *comment, "-j", "MASQUERADE")),
        NatRule("filter", "FORWARD", ("-i", state.bridge, *comment, "-j", "ACCEPT")),
        NatRule("filter", "FORWARD", ("-o", state.bridge, *comment, "-j", "ACCEPT")),
    ]


def _addresses(argv: list[str]) -> set[str]:
    data = json.loads(run(argv).stdout or "[]")
    return {"%s/%s" % (a["local"], a["prefixlen"]) for link in data for a in link.get("addr_info", [])}


def enable_ip_forward() -> None:
    current = IP_FORWARD.read_text(encoding="utf-8").strip()
    if current != "1":
        # remembered outside any lab's state: restored by the `down` of the last lab
        memo = paths.ip_forward_memo()
        if not memo.exists():
            write_atomic(memo, current + "\n")
        IP_FORWARD.write_text("1\n", encoding="utf-8")


def ip_forward_before() -> str | None:
    """The host's ip_forward value from before the first lab switched it on (None: not changed by a lab)."""
    try:
        value = paths.ip_forward_memo().read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value if value in ("0", "1") else None


def restore_ip_forward(value: str) -> None:
    """Put ip_forward back when no lab bridge is left on the host."""
    if not any(name.startswith("kfb-") for name in list_links()):
        IP_FORWARD.write_text("%s\n" % value, encoding="utf-8")
        paths.ip_forward_memo().unlink()


def ensure_network(state: LabState) -> None:
    """The bridge with the gateway address, ip_forward and the lab's rules (each recorded first)."""
    bridge = state.bridge
    if bridge not in list_links():
        run(["ip", "link", "add", bridge, "type", "bridge"])
    wanted = "%s/%d" % (state.gateway, prefix_length(state.subnet))
    if wanted not in _addresses(["ip", "-j", "addr", "show", "dev", bridge]):
        run(["ip", "addr", "add", wanted, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    enable_ip_forward()
    for rule in lab_rules(state):
        if rule not in state.nat_rules:
            state.nat_rules.append(rule)
            save_state(state)
        if run(rule.argv("-C"), check=False).returncode != 0:
            run(rule.argv("-A" if rule.table == "nat" else "-I"))
    progress(state.lab, "network: bridge %s %s, NAT to the outside through the host" % (bridge, wanted))


def ensure_machine_net(state: LabState, machine: Machine) -> None:
    """The machine's namespace with eth0 (a veth whose host end is in the bridge), address and route."""
    ns, veth, peer = machine.netns, machine.veth, veth_peer_name(state.lab, machine.index)
    if ns not in list_netns():
        run(["ip", "netns", "add", ns])
    links = list_links()
    inside = json.loads(run(["ip", "-n", ns, "-j", "link", "show"]).stdout or "[]")
    if "eth0" not in {link["ifname"] for link in inside}:
        for stale in (veth, peer):
            if stale in links:
                run(["ip", "link", "del", stale])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", ns])
        run(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
    run(["ip", "link", "set", veth, "master", state.bridge])
    run(["ip", "link", "set", veth, "up"])
    address = "%s/%d" % (machine.address, prefix_length(state.subnet))
    if address not in _addresses(["ip", "-n", ns, "-j", "addr", "show", "dev", "eth0"]):
        run(["ip", "-n", ns, "addr", "add", address, "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "replace", "default", "via", state.gateway])


def netns_pids(netns: str) -> list[int]:
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(pid) for pid in out.split() if pid.isdigit()]
