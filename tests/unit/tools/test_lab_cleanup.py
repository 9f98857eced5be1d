# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/cleanup.py: what ``down`` removes, planned from a (partial or missing) state file and a
scan of the host that only ever selects the lab's own resources; removing one machine."""

from __future__ import annotations

import pytest
from kflab import addressing, cleanup, paths
from kflab.cleanup import (DeleteLink, DeleteNetns, DeleteRule, HostScan, HostSnapshot, KillNetnsProcesses, RemoveLabDir,
                           RemoveTree, RestoreIpForward, StopMachine, Unmount)
from kflab.state import NatRule
from lab_fixtures import make_state


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE_ROOT", tmp_path)
    return tmp_path


def kinds(actions):
    return [type(a) for a in actions]


def test_cleanup_plan_from_full_state(cache):
    state = make_state(names=("node1", "node2"))
    rule = NatRule("nat", "POSTROUTING", ("-s", state.subnet, "-j", "MASQUERADE"))
    state.nat_rules = [rule]
    actions = cleanup.plan_cleanup("unit", state, HostScan())
    # machines stop first, the lab directory goes last
    assert actions[0] == StopMachine("node1", "10.150.7.11", 1001, "51")
    assert actions[1] == StopMachine("node2", "10.150.7.12", 1002, "52")
    assert actions[-1] == RemoveLabDir(str(cache / "unit"))
    order = kinds(actions)
    assert order.index(KillNetnsProcesses) < order.index(Unmount) < order.index(DeleteNetns) < order.index(DeleteLink)
    assert Unmount("/srv/lab/unit/machines/node1/root") in actions
    assert DeleteNetns(addressing.netns_name("unit", "node2")) in actions
    links = [a.name for a in actions if isinstance(a, DeleteLink)]
    assert links == [addressing.veth_name("unit", 1), addressing.veth_name("unit", 2), addressing.bridge_name("unit")]
    assert DeleteRule(rule) in actions
    assert RestoreIpForward not in order


def test_cleanup_plan_without_state_uses_the_scan(cache):
    """A crash before/while writing state.json: everything found by name prefix is removed."""
    ns = addressing.netns_name("unit", "node1")
    veth, peer, bridge = addressing.veth_name("unit", 1), addressing.veth_peer_name("unit", 2), addressing.bridge_name("unit")
    nat = NatRule("nat", "POSTROUTING", ("-s", "10.150.7.0/24", "-m", "comment", "--comment", "kubeforge-lab:unit",
                                         "-j", "MASQUERADE"))
    scan = HostScan(pids=[4242], links=[bridge, veth, peer], netns=[ns], nat_rules=[nat], ip_forward_before="0",
                    mounts=[str(cache / "unit/machines/node1/root"), str(cache / "unit/machines/node1/root/proc")])
    actions = cleanup.plan_cleanup("unit", None, scan)
    assert actions[0] == StopMachine("pid 4242", None, 4242, None)
    umounts = [a.path for a in actions if isinstance(a, Unmount)]
    assert umounts == [str(cache / "unit/machines/node1/root/proc"), str(cache / "unit/machines/node1/root")]
    assert [a.name for a in actions if isinstance(a, DeleteLink)] == sorted([veth, peer]) + [bridge]
    assert DeleteNetns(ns) in actions
    assert DeleteRule(nat) in actions
    assert RestoreIpForward("0") in actions
    assert actions[-1] == RemoveLabDir(str(cache / "unit"))


def test_cleanup_plan_partial_state_merges_scan_without_duplicates(cache):
    """State written before a machine's resources existed (crash halfway): no pid, no duplicates."""
    state = make_state(names=("node1", "node2"))
    state.machines["node2"].pid = state.machines["node2"].pid_start = None
    scan = HostScan(pids=[1001, 777], netns=[addressing.netns_name("unit", "node1")],
                    links=[addressing.veth_name("unit", 1), addressing.bridge_name("unit")])
    actions = cleanup.plan_cleanup("unit", state, scan)
    stops = [a for a in actions if isinstance(a, StopMachine)]
    assert stops == [StopMachine("node1", "10.150.7.11", 1001, "51"), StopMachine("node2", "10.150.7.12", None, None),
                     StopMachine("pid 777", None, 777, None)]
    assert [a.netns for a in actions if isinstance(a, DeleteNetns)] == [addressing.netns_name("unit", "node1"),
                                                                        addressing.netns_name("unit", "node2")]
    assert [a.name for a in actions if isinstance(a, DeleteLink)].count(addressing.bridge_name("unit")) == 1


def test_cleanup_plan_nothing_left_is_just_the_directory(cache):
    assert cleanup.plan_cleanup("unit", None, HostScan()) == [RemoveLabDir(str(cache / "unit"))]


def test_scan_selects_only_the_labs_own_resources(cache):
    """Several labs on one host (lab-check, lab-check2, lab, cfg-x...): the scan of lab-check takes
    nothing of the others, even where their names share a prefix."""
    own, others = "lab-check", ["lab-check2", "lab", "lab-chec", "cfg-x", "molecule-lab_smoke"]
    snapshot = HostSnapshot(ip_forward_before="0")

    def add(lab, pid):
        snapshot.nspawn_roots[pid] = str(cache / lab / "machines" / "node1" / "root")
        snapshot.links += [addressing.bridge_name(lab), addressing.veth_name(lab, 1), addressing.veth_peer_name(lab, 1)]
        snapshot.netns.append(addressing.netns_name(lab, "node1"))
        snapshot.mounts += [str(cache / lab / "machines" / "node1" / "root"), str(cache / lab / "machines" / "node1" / "root/proc")]
        snapshot.rules.append(NatRule("nat", "POSTROUTING", ("-s", "10.1.1.0/24", "-m", "comment", "--comment",
                                                             addressing.nat_comment(lab), "-j", "MASQUERADE")))

    add(own, 100)
    for pid, lab in enumerate(others, start=200):
        add(lab, pid)
    snapshot.links += ["eth0", "docker0", "kfb-"]
    snapshot.mounts += ["/", str(cache / "base-bookworm"), str(cache)]
    snapshot.nspawn_roots[300] = "/var/lib/machines/somebody-else"
    snapshot.nspawn_roots[301] = str(cache / own)  # the lab directory itself is no machine root
    snapshot.rules.append(NatRule("filter", "FORWARD", ("-i", "docker0", "-j", "ACCEPT")))

    scan = cleanup.select_lab_resources(own, snapshot)
    assert scan.pids == [100]
    assert scan.links == [addressing.bridge_name(own), addressing.veth_name(own, 1), addressing.veth_peer_name(own, 1)]
    assert scan.netns == [addressing.netns_name(own, "node1")]
    assert scan.mounts == [str(cache / own / "machines/node1/root"), str(cache / own / "machines/node1/root/proc")]
    assert [rule.args[5] for rule in scan.nat_rules] == ["kubeforge-lab:lab-check"]
    # and the plan made from it touches nothing of the other labs
    for action in cleanup.plan_cleanup(own, None, scan):
        text = repr(action)
        for lab in others:
            assert addressing.lab_id(lab) not in text and "/%s/" % lab not in text and "kubeforge-lab:%s'" % lab not in text


def test_machine_removal_plan_stops_unmounts_and_deletes_one_machine():
    machine = make_state().machines["node2"]
    actions = cleanup.plan_machine_removal(machine, [1002, 5555])
    assert actions == [
        StopMachine("node2", "10.150.7.12", 1002, "52"),
        StopMachine("node2 (nspawn)", None, 5555, None),
        KillNetnsProcesses(addressing.netns_name("unit", "node2")),
        Unmount("/srv/lab/unit/machines/node2/root"),
        DeleteNetns(addressing.netns_name("unit", "node2")),
        DeleteLink(addressing.veth_name("unit", 2)),
        RemoveTree("/srv/lab/unit/machines/node2"),
    ]
