# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and numbers of a lab, all pure: its id, kernel object names, subnet, addresses, machine
names and indexes, and the inventory groups the machines fall into."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from .errors import LabError, UsageError

MAX_MACHINES = 200
FIRST_HOST = 10  # node1 gets .11, node2 .12, ...; .1 is the bridge (gateway)
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MACHINE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LAB_ID_LENGTH = 6


def lab_id(lab: str) -> str:
    """Six hex digits naming the lab's kernel objects (interface names are limited to 15 chars)."""
    return hashlib.sha256(lab.encode("utf-8")).hexdigest()[:LAB_ID_LENGTH]


def bridge_name(lab: str) -> str:
    return "kfb-%s" % lab_id(lab)


def veth_name(lab: str, index: int) -> str:
    return "kfv-%s-%d" % (lab_id(lab), index)


def veth_peer_name(lab: str, index: int) -> str:
    return "kfp-%s-%d" % (lab_id(lab), index)


def netns_name(lab: str, machine: str) -> str:
    return "kf-%s-%s" % (lab_id(lab), machine)


def nat_comment(lab: str) -> str:
    return "kubeforge-lab:%s" % lab


def is_lab_link(lab: str, link: str) -> bool:
    """The bridge or a veth end of ``lab`` (and of no other lab: the id is followed by '-' or ends)."""
    ident = lab_id(lab)
    return link == "kfb-%s" % ident or link.startswith(("kfv-%s-" % ident, "kfp-%s-" % ident))


def is_lab_netns(lab: str, netns: str) -> bool:
    return netns.startswith("kf-%s-" % lab_id(lab))


def validate_lab_name(lab: str) -> str:
    if not LAB_NAME_RE.match(lab or ""):
        raise UsageError("invalid lab name %r: use letters, digits, '_', '.', '-' (at most 63 characters, "
                         "starting with a letter or digit)" % lab)
    return lab


def machine_names(count: int, names: list[str] | None = None) -> list[str]:
    """The machines' names: ``names`` when given, else node1..nodeN."""
    if names:
        if count and count != len(names):
            raise UsageError("--machines %d does not match the %d names given with --names (%s)"
                             % (count, len(names), ",".join(names)))
        count = len(names)
    if count < 1 or count > MAX_MACHINES:
        raise UsageError("--machines must be between 1 and %d, got %d" % (MAX_MACHINES, count))
    result = list(names) if names else ["node%d" % i for i in range(1, count + 1)]
    for name in result:
        if not MACHINE_NAME_RE.match(name):
            raise UsageError("invalid machine name %r: use lower-case letters, digits and '-' (a hostname label)" % name)
    if len(set(result)) != len(result):
        raise UsageError("machine names must be unique: %s" % ",".join(result))
    return result


# 10.112.0.0-10.199.255.0: above kubeadm's default Service range 10.96.0.0/12 (10.96-10.111), which the kubeadm
# role refuses to overlap with the nodes' network, and below its usual pod ranges (10.244.0.0/16)
FIRST_SUBNET_OCTET, SUBNET_OCTETS = 112, 88


def subnet_candidates(lab: str):
    """Deterministic /24 candidates in 10.112.0.0-10.199.255.0 derived from the lab name."""
    value = int(hashlib.sha256(("subnet:" + lab).encode("utf-8")).hexdigest(), 16)
    slots = SUBNET_OCTETS * 256
    start = value % slots
    for step in range(slots):
        slot = (start + step) % slots
        yield ipaddress.IPv4Network("10.%d.%d.0/24" % (FIRST_SUBNET_OCTET + slot // 256, slot % 256))


def pick_subnet(lab: str, used: list) -> ipaddress.IPv4Network:
    """First candidate overlapping none of ``used`` (networks or addresses, as strings or objects)."""
    taken = []
    for item in used:
        try:
            taken.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            continue
    for candidate in subnet_candidates(lab):
        if not any(candidate.overlaps(net) for net in taken if net.version == 4 and net.prefixlen > 0):
            return candidate
    raise LabError("no free /24 left in 10.112.0.0/16-10.199.0.0/16 for lab %s" % lab)


def parse_routes(routes_json: str) -> list[str]:
    """Destinations of ``ip -j route show table all`` (default routes skipped)."""
    result = []
    for route in json.loads(routes_json or "[]"):
        dst = route.get("dst", "")
        if not dst or dst == "default":
            continue
        result.append(dst)
    return result


def parse_nameservers(resolv_conf: str) -> list[str]:
    return [line.split()[1] for line in resolv_conf.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]


def gateway_address(subnet: str) -> str:
    return str(ipaddress.IPv4Network(subnet)[1])


def prefix_length(subnet: str) -> int:
    return ipaddress.IPv4Network(subnet).prefixlen


def machine_address(subnet: str, index: int) -> str:
    """Address of the machine with 1-based ``index``."""
    net = ipaddress.IPv4Network(subnet)
    if index < 1 or FIRST_HOST + index >= net.num_addresses - 1:
        raise LabError("machine index %d does not fit in %s" % (index, subnet))
    return str(net[FIRST_HOST + index])


def assign_indexes(existing: dict, names: list[str]) -> dict[str, int]:
    """1-based machine indexes (they fix address and veth): kept for machines that exist, the lowest
    free ones for new machines, so growing or shrinking a running lab never renumbers a machine."""
    result = {name: existing[name] for name in names if existing.get(name)}
    taken = set(result.values())
    free = (i for i in range(1, MAX_MACHINES + len(taken) + 1) if i not in taken)
    for name in names:
        if name not in result:
            result[name] = next(free)
    return result


def group_layout(names: list[str], control_planes: int = 1) -> dict[str, list[str]]:
    """Inventory groups: the first ``control_planes`` machines are control planes, the rest workers;
    etcd runs on the first 3 machines (1 when there are fewer than 3) so it keeps a quorum."""
    if control_planes < 1 or control_planes > len(names):
        raise UsageError("--control-planes must be between 1 and the number of machines (%d), got %d"
                         % (len(names), control_planes))
    etcd_count = 3 if len(names) >= 3 else 1
    etcd_count = max(etcd_count, control_planes if control_planes % 2 else control_planes + 1)
    etcd_count = min(etcd_count, len(names))
    return {
        "control_plane": names[:control_planes],
        "workers": names[control_planes:],
        "etcd": names[:etcd_count],
    }
