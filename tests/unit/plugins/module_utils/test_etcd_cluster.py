# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Membership changes against a scripted cluster (real etcd 3.4/3.5 judge them in tests/integration/test_etcd_real.py)."""

from __future__ import annotations

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_cluster as cluster
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import EtcdctlError


class FakeEtcdctl:
    """A cluster of members {name: {id, peer, client, learner, healthy, index}} with a leader."""

    def __init__(self, names, leader):
        self.nodes = {}
        for i, n in enumerate(names):
            self.nodes[n] = {"id": "%x" % (i + 10), "peer": "https://10.0.0.%d:2380" % (11 + i), "client": "https://10.0.0.%d:2379" % (11 + i),
                             "learner": False, "healthy": True, "index": 100, "started": True}
        self.leader = leader
        self.calls = []
        self.add_failures = 0
        self.promote_failures = 0

    def members(self, endpoints=None):
        self.calls.append(("members",))
        return [{"id": m["id"], "name": n if m["started"] else "", "peer_urls": [m["peer"]], "client_urls": [m["client"]] if m["started"] else [],
                 "is_learner": m["learner"], "started": m["started"]} for n, m in self.nodes.items()]

    def _by_endpoint(self, endpoint):
        return next((n, m) for n, m in self.nodes.items() if m["client"] == endpoint)

    def status(self, endpoints):
        results, errors = {}, {}
        for endpoint in endpoints:
            name, m = self._by_endpoint(endpoint)
            if not m["healthy"]:
                errors[endpoint] = "context deadline exceeded"
                continue
            results[endpoint] = {"id": m["id"], "cluster_id": "c1", "leader": self.nodes[self.leader]["id"] if self.leader else None,
                                 "version": "3.5.16", "raft_index": m["index"], "raft_applied_index": m["index"], "raft_term": 2,
                                 "db_size": 1, "is_learner": m["learner"], "errors": []}
        return results, errors

    def health(self, endpoints):
        results, errors = {}, {}
        for endpoint in endpoints:
            _name, m = self._by_endpoint(endpoint)
            results[endpoint] = {"health": m["healthy"], "took": "1ms", "error": None if m["healthy"] else "context deadline exceeded"}
            if not m["healthy"]:
                errors[endpoint] = "context deadline exceeded"
        return results, errors

    def move_leader(self, member_id, endpoints):
        self.calls.append(("move-leader", member_id))
        self.leader = next(n for n, m in self.nodes.items() if m["id"] == member_id)

    def member_add(self, name, peer_urls, learner, endpoints=None):
        self.calls.append(("member add", name, learner))
        if self.add_failures:
            self.add_failures -= 1
            raise EtcdctlError("member add", "Error: etcdserver: unhealthy cluster")
        self.nodes[name] = {"id": "ff", "peer": peer_urls[0], "client": "https://10.0.0.99:2379", "learner": learner,
                            "healthy": False, "index": 0, "started": False}
        return "ff"

    def member_promote(self, member_id, endpoints=None):
        self.calls.append(("member promote", member_id))
        if self.promote_failures:
            self.promote_failures -= 1
            raise EtcdctlError("member promote", "Error: etcdserver: can only promote a learner member which is in sync with leader")
        for m in self.nodes.values():
            if m["id"] == member_id:
                m["learner"] = False

    def member_remove(self, member_id, endpoints=None):
        self.calls.append(("member remove", member_id))
        self.nodes = {n: m for n, m in self.nodes.items() if m["id"] != member_id}


class FakeOps:
    def __init__(self, etcdctl):
        self.etcdctl = etcdctl
        self.clock = 0.0
        self.systemctl_calls = []

    def systemctl(self, args):
        self.systemctl_calls.append(list(args))
        if args[0] == "restart":  # a restart heals a member that hung
            for m in self.etcdctl.nodes.values():
                m["healthy"] = True
        if args[0] == "start":  # the joining member comes up
            for m in self.etcdctl.nodes.values():
                if not m["started"]:
                    m.update(started=True, healthy=True, index=100, client="https://10.0.0.99:2379")
        return 0, "", ""

    def monotonic(self):
        return self.clock

    def sleep(self, seconds):
        self.clock += seconds


ENDPOINTS = ["https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"]


def test_look_and_health_problems():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n2")
    ctl.nodes["n3"]["healthy"] = False
    view = cluster.look(ctl, ENDPOINTS)
    assert view.leader.name == "n2"
    assert [m.healthy for m in view.members] == [True, True, False]
    assert cluster.health_problems(view, "n1", ["n1", "n2", "n3", "n4"]) == [
        "unhealthy: n3 (https://10.0.0.13:2379): context deadline exceeded",
        "member list is [n1, n2, n3], the etcd hosts are [n1, n2, n3, n4]: n4 not members"]
    assert cluster.extra_members(view, ["n1", "n2"]) == ["n3"]
    assert view.as_dict()["members"][1]["is_leader"] is True


def test_restart_moves_leadership_to_a_restarted_member_first():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ops = FakeOps(ctl)
    result = cluster.restart(ops, "n1", "etcd", ENDPOINTS, prefer=["n3", "n2"])
    assert result["leader_moved_to"] == "n3"
    assert ("move-leader", ctl.nodes["n3"]["id"]) in ctl.calls
    assert ops.systemctl_calls == [["restart", "etcd"]]


def test_restart_of_a_follower_keeps_the_leader():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    result = cluster.restart(FakeOps(ctl), "n2", "etcd", ENDPOINTS)
    assert result["leader_moved_to"] is None and ctl.leader == "n1"


def test_restart_refused_when_the_others_lack_quorum_and_allowed_for_one_member():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ctl.nodes["n3"]["healthy"] = False
    with pytest.raises(cluster.ClusterError, match=r"not restarting n1: .* needs 2 healthy voting members, only 1 others are healthy "
                                                   r"\(n3 \(https://10.0.0.13:2379\): context deadline exceeded\)"):
        cluster.restart(FakeOps(ctl), "n1", "etcd", ENDPOINTS)
    assert cluster.restart(FakeOps(ctl), "n3", "etcd", ENDPOINTS)["changed"] is True  # the sick one itself
    single = FakeEtcdctl(["n1"], "n1")
    assert cluster.restart(FakeOps(single), "n1", "etcd", ENDPOINTS[:1])["changed"] is True


def test_restart_waits_until_the_member_caught_up_and_times_out_with_the_reason():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ctl.nodes["n2"]["index"] = 90  # behind: never catches up in this script
    ops = FakeOps(ctl)
    ctl.nodes["n1"]["index"] = 100
    with pytest.raises(cluster.ClusterError, match=r"member n2 being healthy again after its restart did not happen within 5 s "
                                                   r"\(last error: applied index 90, cluster at 100\)"):
        cluster.restart(ops, "n2", "etcd", ENDPOINTS, timeout=5)


def test_check_mode_changes_nothing():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ops = FakeOps(ctl)
    assert cluster.restart(ops, "n1", "etcd", ENDPOINTS, check_mode=True)["changed"] is True
    assert cluster.remove(ops, "n2", ENDPOINTS, check_mode=True)["changed"] is True
    assert ops.systemctl_calls == [] and not [c for c in ctl.calls if c[0] != "members"]


def test_join_as_learner_with_retries_then_promote():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ctl.add_failures, ctl.promote_failures = 2, 3
    ops = FakeOps(ctl)
    result = cluster.join(ops, "n4", ["https://10.0.0.99:2380"], "https://10.0.0.99:2379", "etcd", ENDPOINTS + ["https://10.0.0.99:2379"])
    assert result["steps"] == ["added as learner", "started", "promoted"]
    assert [c for c in ctl.calls if c[0] == "member add"] == [("member add", "n4", True)] * 3
    assert len([c for c in ctl.calls if c[0] == "member promote"]) == 4
    assert ops.systemctl_calls == [["start", "--no-block", "etcd"]]
    assert ctl.nodes["n4"]["learner"] is False
    again = cluster.join(ops, "n4", ["https://10.0.0.99:2380"], "https://10.0.0.99:2379", "etcd", ENDPOINTS)
    assert again == {"changed": False, "member": "n4", "steps": []}


def test_join_refused_for_a_peer_url_of_another_member_or_without_quorum():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    with pytest.raises(cluster.ClusterError, match="the peer URL https://10.0.0.12:2380 already belongs to member n2"):
        cluster.join(FakeOps(ctl), "n4", ["https://10.0.0.12:2380"], "https://10.0.0.99:2379", "etcd", ENDPOINTS)
    ctl.nodes["n2"]["healthy"] = ctl.nodes["n3"]["healthy"] = False
    with pytest.raises(cluster.ClusterError, match="not adding n4: the cluster has no quorum"):
        cluster.join(FakeOps(ctl), "n4", ["https://10.0.0.99:2380"], "https://10.0.0.99:2379", "etcd", ENDPOINTS)


def test_remove():
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n3")
    assert cluster.remove(FakeOps(ctl), "n9", ENDPOINTS)["changed"] is False
    result = cluster.remove(FakeOps(ctl), "n3", ENDPOINTS)
    assert result["leader_moved_to"] in ("n1", "n2")
    assert [c[0] for c in ctl.calls if c[0] != "members"] == ["move-leader", "member remove"]
    assert "n3" not in ctl.nodes
    single = FakeEtcdctl(["n1"], "n1")
    with pytest.raises(cluster.ClusterError, match="not removing n1: it is the last voting member"):
        cluster.remove(FakeOps(single), "n1", ENDPOINTS[:1])
    ctl = FakeEtcdctl(["n1", "n2", "n3"], "n1")
    ctl.nodes["n2"]["healthy"] = False
    with pytest.raises(cluster.ClusterError, match=r"not removing n3: the 2 remaining members need 2 healthy ones for quorum, 1 are"):
        cluster.remove(FakeOps(ctl), "n3", ENDPOINTS)
