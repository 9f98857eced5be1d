# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcdctl argv and the parsing of its JSON (outputs recorded from etcdctl 3.4.23 and 3.5.16)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import Etcdctl, EtcdctlError

STATUS_34 = [{
    "Endpoint": "https://127.0.0.11:2379",
    "Status": {"header": {"cluster_id": 6754742526264120611, "member_id": 2418800487377064542, "revision": 1, "raft_term": 2},
               "version": "3.4.23", "dbSize": 20480, "leader": 2418800487377064542, "raftIndex": 8, "raftTerm": 2,
               "raftAppliedIndex": 8, "dbSizeInUse": 16384}}]
STATUS_FAILED = ("Failed to get the status of endpoint https://127.0.0.12:2379 (context deadline exceeded)\n")
MEMBERS = {"header": {"cluster_id": 1}, "members": [
    {"ID": 1016797267107033716, "name": "m4", "peerURLs": ["https://127.0.0.14:2380"], "clientURLs": ["https://127.0.0.14:2379"], "isLearner": True},
    {"ID": 2418800487377064542, "name": "m1", "peerURLs": ["https://127.0.0.11:2380"], "clientURLs": ["https://127.0.0.11:2379"]},
    {"ID": 3, "peerURLs": ["https://127.0.0.15:2380"], "isLearner": True}]}


class Script:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.argv = []

    def __call__(self, argv):
        self.argv.append(argv)
        return self.answers.pop(0)


def ctl(script):
    return Etcdctl("/usr/bin/etcdctl", script, ["https://127.0.0.11:2379"], "/p/ca.pem", "/p/admin.pem", "/p/admin-key.pem")


def test_argv_has_tls_and_timeouts():
    script = Script((0, json.dumps(MEMBERS), ""))
    ctl(script).members()
    assert script.argv[0] == ["/usr/bin/etcdctl", "--endpoints=https://127.0.0.11:2379", "--cacert", "/p/ca.pem", "--cert", "/p/admin.pem",
                              "--key", "/p/admin-key.pem", "--dial-timeout=3s", "--command-timeout=10s", "member", "list", "-w", "json"]


def test_members_ids_are_hex_and_unstarted_members_have_no_name():
    members = ctl(Script((0, json.dumps(MEMBERS), ""))).members()
    assert members[0] == {"id": "e1c63ba2a80b274", "name": "m4", "peer_urls": ["https://127.0.0.14:2380"],
                          "client_urls": ["https://127.0.0.14:2379"], "is_learner": True, "started": True}
    assert members[1]["id"] == "21914e3a58a6d25e" and members[1]["is_learner"] is False
    assert members[2]["started"] is False and members[2]["name"] == ""


def test_status_with_one_endpoint_down():
    script = Script((1, json.dumps(STATUS_34), STATUS_FAILED))
    results, errors = ctl(script).status(["https://127.0.0.11:2379", "https://127.0.0.12:2379"])
    assert results["https://127.0.0.11:2379"]["leader"] == "21914e3a58a6d25e"
    assert results["https://127.0.0.11:2379"]["raft_applied_index"] == 8
    assert errors == {"https://127.0.0.12:2379": "context deadline exceeded"}


def test_health_entries():
    output = [{"endpoint": "https://127.0.0.11:2379", "health": True, "took": "50ms"},
              {"endpoint": "https://127.0.0.12:2379", "health": False, "took": "5s", "error": "context deadline exceeded"}]
    results, errors = ctl(Script((1, json.dumps(output), "Error: unhealthy cluster"))).health(
        ["https://127.0.0.11:2379", "https://127.0.0.12:2379", "https://127.0.0.13:2379"])
    assert results["https://127.0.0.11:2379"]["health"] is True
    assert errors == {"https://127.0.0.12:2379": "context deadline exceeded", "https://127.0.0.13:2379": "Error: unhealthy cluster"}


def test_errors_quote_etcdctls_own_line():
    log = '{"level":"warn","msg":"retrying of unary invoker failed"}\nError: etcdserver: unhealthy cluster\n'
    with pytest.raises(EtcdctlError) as raised:
        ctl(Script((1, "", log))).member_add("m5", ["https://127.0.0.15:2380"], learner=True)
    assert str(raised.value) == "etcdctl member add failed: Error: etcdserver: unhealthy cluster"
    script = Script((0, "Member e1c63ba2a80b274 promoted in cluster 5dbdaa8a1b329523\n", ""))
    ctl(script).member_promote("e1c63ba2a80b274")
    assert script.argv[0][-3:] == ["member", "promote", "e1c63ba2a80b274"]
    script = Script((0, json.dumps({"member": {"ID": 255}}), ""))
    assert ctl(script).member_add("m5", ["https://127.0.0.15:2380"], learner=True) == "ff"
    assert script.argv[0][-7:] == ["member", "add", "m5", "--peer-urls=https://127.0.0.15:2380", "-w", "json", "--learner"]
