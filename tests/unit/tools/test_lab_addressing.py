# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/addressing.py: lab ids and kernel object names, lab and machine names, subnet and
address allocation, machine indexes across grow/shrink, inventory group layout."""

from __future__ import annotations

import ipaddress
import json

import pytest
from kflab import addressing
from kflab.errors import LabError

# --- naming ---------------------------------------------------------------------------------


def test_kernel_object_names_fit_interface_limit_and_are_per_lab():
    for name in ("kubeforge", "molecule-node_prep_containerd", "x" * 63):
        assert len(addressing.bridge_name(name)) <= 15
        assert len(addressing.veth_name(name, 200)) <= 15
        assert len(addressing.veth_peer_name(name, 200)) <= 15
    assert addressing.bridge_name("a") != addressing.bridge_name("b")
    assert addressing.lab_id("kubeforge") == addressing.lab_id("kubeforge")
    assert addressing.netns_name("kubeforge", "node1").startswith("kf-%s-" % addressing.lab_id("kubeforge"))


def test_lab_link_and_netns_names_match_only_their_own_lab():
    own, other = "lab-check", "lab-check2"
    assert addressing.is_lab_link(own, addressing.bridge_name(own))
    assert addressing.is_lab_link(own, addressing.veth_name(own, 12))
    assert addressing.is_lab_link(own, addressing.veth_peer_name(own, 1))
    assert not addressing.is_lab_link(own, addressing.bridge_name(other))
    assert not addressing.is_lab_link(own, addressing.veth_name(other, 1))
    assert not addressing.is_lab_link(own, addressing.bridge_name(own) + "0")
    assert addressing.is_lab_netns(own, addressing.netns_name(own, "node1"))
    assert not addressing.is_lab_netns(own, addressing.netns_name(other, "node1"))


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 64, "semi;colon"])
def test_invalid_lab_names_are_refused(name):
    with pytest.raises(LabError, match="invalid lab name"):
        addressing.validate_lab_name(name)


def test_machine_names_default_and_given():
    assert addressing.machine_names(3) == ["node1", "node2", "node3"]
    assert addressing.machine_names(0, ["cp", "w1"]) == ["cp", "w1"]
    assert len(addressing.machine_names(12)) == 12


@pytest.mark.parametrize(("count", "names", "message"), [
    (0, None, "between 1 and 200"),
    (201, None, "between 1 and 200"),
    (3, ["a", "b"], "does not match the 2 names"),
    (0, ["Node_1"], "invalid machine name"),
    (0, ["a", "a"], "must be unique"),
])
def test_machine_names_errors(count, names, message):
    with pytest.raises(LabError, match=message):
        addressing.machine_names(count, names)


# --- addresses --------------------------------------------------------------------------------

def test_subnet_is_deterministic_private_and_in_range():
    first = addressing.pick_subnet("kubeforge", [])
    assert first == addressing.pick_subnet("kubeforge", [])
    assert first.prefixlen == 24
    assert first.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    assert 112 <= int(str(first.network_address).split(".")[1]) <= 199
    assert addressing.pick_subnet("other-lab", []) != first


def test_no_lab_subnet_overlaps_kubeadms_default_service_range():
    services = ipaddress.IPv4Network("10.96.0.0/12")
    for lab in ("kubeforge", "site-lab", "molecule-site", "bench-12", "x"):
        assert not addressing.pick_subnet(lab, []).overlaps(services), lab
    assert not any(net.overlaps(services) for net in addressing.subnet_candidates("kubeforge"))


def test_subnet_skips_host_routes_nameservers_and_other_labs():
    first = addressing.pick_subnet("kubeforge", [])
    # the host already routes a wider network containing the first candidate
    wider = ipaddress.IPv4Network(first).supernet(new_prefix=20)
    picked = addressing.pick_subnet("kubeforge", [str(wider)])
    assert not picked.overlaps(wider)
    # a nameserver address inside the candidate counts as taken
    picked = addressing.pick_subnet("kubeforge", [str(first[53])])
    assert picked != first
    # garbage and the default route do not block anything
    assert addressing.pick_subnet("kubeforge", ["default", "not-an-address", "0.0.0.0/0"]) == first


def test_parse_routes_and_nameservers():
    routes = json.dumps([
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"type": "local", "dst": "127.0.0.1", "dev": "lo", "table": "local"},
        {"dst": "fe80::/64", "dev": "eth0"},
    ])
    assert addressing.parse_routes(routes) == ["192.0.2.0/24", "127.0.0.1", "fe80::/64"]
    assert addressing.parse_nameservers("# x\nnameserver 10.255.255.53\nsearch lan\nnameserver ::1\n") == ["10.255.255.53", "::1"]


def test_machine_and_gateway_addresses():
    assert addressing.gateway_address("10.150.7.0/24") == "10.150.7.1"
    assert addressing.machine_address("10.150.7.0/24", 1) == "10.150.7.11"
    assert addressing.machine_address("10.150.7.0/24", 12) == "10.150.7.22"
    assert addressing.machine_address("10.150.7.0/24", 200) == "10.150.7.210"
    with pytest.raises(LabError, match="does not fit"):
        addressing.machine_address("10.150.7.0/24", 250)
    with pytest.raises(LabError, match="does not fit"):
        addressing.machine_address("10.150.7.0/24", 0)


def test_assign_indexes_keeps_running_machines_and_fills_gaps():
    assert addressing.assign_indexes({}, ["node1", "node2", "node3"]) == {"node1": 1, "node2": 2, "node3": 3}
    # node2 removed, node4 added: node3 keeps 3 (its address), node4 takes the free 2
    assert addressing.assign_indexes({"node1": 1, "node2": 2, "node3": 3}, ["node1", "node3", "node4"]) == {
        "node1": 1, "node3": 3, "node4": 2}
    # reordering names never renumbers an existing machine
    assert addressing.assign_indexes({"a": 1, "b": 2}, ["b", "a", "c"]) == {"a": 1, "b": 2, "c": 3}
    # a machine recorded without an index (crash before it was saved) gets a fresh one
    assert addressing.assign_indexes({"a": 1, "b": None}, ["a", "b"]) == {"a": 1, "b": 2}


# --- inventory groups -------------------------------------------------------------------------

def test_group_layout_three_machines():
    assert addressing.group_layout(["node1", "node2", "node3"]) == {
        "control_plane": ["node1"], "workers": ["node2", "node3"], "etcd": ["node1", "node2", "node3"]}


def test_group_layout_small_and_large():
    assert addressing.group_layout(["node1"]) == {"control_plane": ["node1"], "workers": [], "etcd": ["node1"]}
    assert addressing.group_layout(["a", "b"])["etcd"] == ["a"]
    five = addressing.group_layout(["n1", "n2", "n3", "n4", "n5"], control_planes=3)
    assert five == {"control_plane": ["n1", "n2", "n3"], "workers": ["n4", "n5"], "etcd": ["n1", "n2", "n3"]}
    # etcd keeps an odd member count covering every control plane
    assert addressing.group_layout(["n%d" % i for i in range(1, 7)], control_planes=4)["etcd"] == ["n1", "n2", "n3", "n4", "n5"]
    with pytest.raises(LabError, match="--control-planes must be between 1 and the number of machines"):
        addressing.group_layout(["a", "b"], control_planes=3)
