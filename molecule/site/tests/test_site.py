# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's kubeadm orchestration, judged from the call records of the kubeadm/kubelet/kubectl TEST DOUBLES
(tests/doubles: they record every call as a JSON line in /var/log/kubeforge-test-doubles/) and from the cluster
state the doubles keep; then scale.yml, remove_node.yml and reset.yml, each run here and judged the same way.
The tests run in file order: the later ones change the cluster."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
sys.path.insert(0, str(PROJECT / ".build" / "collections"))
from ansible_collections.kubeforge.cluster.plugins.filter.kubeadm_pki import ca_cert_hash  # noqa: E402

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
CONTROL_PLANES = ["node1", "node2", "node3"]
WORKERS = ["node4"]
ALL = CONTROL_PLANES + WORKERS + ["node5"]
LOG_DIR = "/var/log/kubeforge-test-doubles"
ADMIN = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
CONTAINERD = "unix:///run/containerd/containerd.sock"
CRI_DOCKERD = "unix:///run/cri-dockerd.sock"


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, INVENTORY)) for name in ALL}


def records(hosts, node, component="kubeadm"):
    text = hosts[node].run("cat %s/%s.log 2>/dev/null || true" % (LOG_DIR, component)).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def calls(hosts, node, *words, component="kubeadm"):
    """The records of ``component`` on ``node`` whose argv (without options) starts with ``words``."""
    found = []
    for record in records(hosts, node, component):
        argv = [a for a in record["argv"][1:] if not a.startswith("-")]
        if component == "kubectl":
            argv = [a for a in argv if a != "/etc/kubernetes/admin.conf"]
        if argv[:len(words)] == list(words):
            found.append(record)
    return found


def inits(hosts, node):
    """``kubeadm init`` itself, not its phases (``init phase upload-certs``)."""
    return [r for r in calls(hosts, node, "init") if "phase" not in r["argv"]]


def cluster_state(hosts):
    out = hosts["node1"].check_output(" ".join(ADMIN + ["get", "nodes,csr", "-o", "json"]))
    return json.loads(out)["items"]


def playbook(name, *args):
    extra = EPHEMERAL / "scale-inventory.yml"
    extra.write_text("all:\n  children:\n    workers:\n      hosts:\n        node5:\n    kube_nodes:\n      children:\n        workers:\n")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run(["ansible-playbook", "-i", INVENTORY, "-i", str(extra), str(PROJECT / "playbooks" / name)] + list(args),
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, "%s failed:\n%s\n%s" % (name, done.stdout[-6000:], done.stderr[-3000:])
    recap = dict(re.findall(r"^(node\d)\s+: ok=\d+\s+changed=(\d+)", done.stdout, re.M))
    return {node: int(changed) for node, changed in recap.items()}, done.stdout


def test_init_ran_exactly_once_on_the_first_control_plane(hosts):
    found = {node: inits(hosts, node) for node in ALL}
    assert [(node, r["rc"]) for node in ALL for r in found[node]] == [("node1", 0)]
    record = found["node1"][0]
    assert "--upload-certs" in record["argv"] and record["upload_certs"]
    assert record["argv"][-3:] == ["--config", "/etc/kubernetes/kubeadm/init.yaml", "--upload-certs"]
    assert record["server"] == "https://127.0.0.1:6443"  # through the node-local apiserver proxy
    assert record["cri_socket"] == CONTAINERD


def test_control_planes_join_one_at_a_time_in_inventory_order_then_the_workers(hosts):
    joins = sorted((r for node in ALL for r in calls(hosts, node, "join")), key=lambda r: r["time"])
    assert [(r["node"], r["control_plane"], r["rc"]) for r in joins] == [
        ("node2", True, 0), ("node3", True, 0), ("node4", False, 0)]
    init_end = inits(hosts, "node1")[0]["end"]
    assert joins[0]["time"] > init_end
    assert joins[1]["time"] >= joins[0]["end"], "node3 started joining before node2 had finished"
    assert joins[2]["time"] >= joins[1]["end"], "a worker joined before the control planes had"
    assert all(r["certificate_key_given"] == r["control_plane"] for r in joins)
    # the criSocket each node gave kubeadm is the endpoint of its runtime (node4 on Docker through cri-dockerd)
    assert {r["node"]: r["cri_socket"] for r in joins} == {"node2": CONTAINERD, "node3": CONTAINERD, "node4": CRI_DOCKERD}
    assert {r["endpoint"] for r in joins} == {"127.0.0.1:6443"}  # each node joined through its own apiserver proxy


def test_every_join_has_a_fresh_token_and_the_pin_of_the_cluster_ca(hosts):
    ca_pem = hosts["node1"].file("/etc/kubernetes/pki/ca.crt").content_string
    assert "BEGIN CERTIFICATE" in ca_pem
    pin = ca_cert_hash(ca_pem)
    assert inits(hosts, "node1")[0]["ca_pin"] == pin  # openssl on the node and the filter agree
    created = {r["token_id"]: r for r in calls(hosts, "node1", "token", "create")}
    joins = [r for node in ALL for r in calls(hosts, node, "join")]
    assert len(created) == len(joins) == 3
    for record in joins:
        assert record["ca_pins"] == [pin] and record["ca_pin_of_cluster"] == pin
        assert record["token_id"] in created, "%s joined with a token no token create made" % record["node"]
        assert created[record["token_id"]]["description"] == "kubeforge.cluster join of " + record["node"]
        assert created[record["token_id"]]["ttl"] == 900
    assert len({r["token_id"] for r in joins}) == len(joins)
    for node in ["node2", "node3", "node4"]:
        assert not hosts[node].file("/etc/kubernetes/kubeadm/join.yaml").exists, "the join configuration (token) was left behind"


def test_the_second_run_and_check_mode_called_nothing_that_changes_the_cluster(hosts):
    """idempotence and check ran before verify: every mutating call is from the first converge."""
    for node in ALL:
        for record in records(hosts, node):
            argv = [a for a in record["argv"][1:] if not a.startswith("-")]
            assert argv[:1] in (["init"], ["join"], ["token"], ["version"], ["config"]), record
        assert len(inits(hosts, node)) + len(calls(hosts, node, "join")) <= 1
    assert len(calls(hosts, "node1", "init", "phase", "upload-certs")) == 1
    mutating = [r for r in records(hosts, "node1", "kubectl") if not {"get", "diff"} & set(r["argv"])]
    assert [r["argv"][3:5] + [r["argv"][5][:5]] for r in mutating if r["argv"][3] in ("label", "taint")] == [
        ["taint", "node", "node1"], ["label", "node", "node2"], ["taint", "node", "node2"], ["taint", "node", "node3"], ["label", "node", "node4"]]
    assert [r["argv"][3] for r in mutating if r["argv"][3] not in ("label", "taint")] == ["certificate", "apply"]


def test_the_cluster_has_the_inventorys_nodes_labels_taints_csrs_and_add_ons(hosts):
    items = cluster_state(hosts)
    nodes = {i["metadata"]["name"]: i for i in items if i["kind"] == "Node"}
    assert sorted(nodes) == ["node1", "node2", "node3", "node4"]
    for name, node in nodes.items():
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "lab-a"
        taints = [(t["key"], t.get("value", ""), t["effect"]) for t in node["spec"].get("taints") or []]
        assert taints == ([("dedicated", "lab", "NoSchedule")] if name == "node4" else []), name  # control planes schedulable
    assert nodes["node4"]["metadata"]["labels"]["node-role.kubernetes.io/worker"] == ""
    assert [n for n in sorted(nodes) if nodes[n]["metadata"]["labels"].get("katacontainers.io/kata-runtime") == "true"] == ["node2"]
    csrs = [i for i in items if i["kind"] == "CertificateSigningRequest"]
    assert sorted(c["spec"]["username"] for c in csrs) == ["system:node:" + n for n in ["node1", "node2", "node3", "node4"]]
    assert all(c["status"]["conditions"][0]["type"] == "Approved" for c in csrs)
    approved = calls(hosts, "node1", "certificate", "approve", component="kubectl")
    assert len(approved) == 1 and sorted(approved[0]["approved"]) == sorted(c["metadata"]["name"] for c in csrs)
    applied = calls(hosts, "node1", "apply", component="kubectl")
    assert [sorted(r["objects"]) for r in applied] == [["ConfigMap/kube-system/lab-cni-config", "RuntimeClass//kata"]]


def test_admin_conf_was_fetched_private(hosts):
    fetched = EPHEMERAL / "admin.conf"
    assert stat.S_IMODE(fetched.stat().st_mode) == 0o600
    assert fetched.read_text() == hosts["node1"].file("/etc/kubernetes/admin.conf").content_string


def test_scale_touches_only_the_new_node(hosts):
    before = {node: (len(records(hosts, node)), len(records(hosts, node, "kubelet"))) for node in ALL}
    changed, _out = playbook("scale.yml", "--limit", "node5")
    assert set(changed) == {"node5"} and changed["node5"] > 0
    joins = calls(hosts, "node5", "join")
    assert [(r["node"], r["control_plane"], r["rc"]) for r in joins] == [("node5", False, 0)]
    for node in CONTROL_PLANES[1:] + WORKERS:
        assert (len(records(hosts, node)), len(records(hosts, node, "kubelet"))) == before[node], node
    new_on_node1 = records(hosts, "node1")[before["node1"][0]:]
    assert [r["argv"][1:3] for r in new_on_node1] == [["token", "create"]]  # the one API call the join needs
    assert "node5" in {i["metadata"]["name"] for i in cluster_state(hosts) if i["kind"] == "Node"}


def test_remove_node_drains_resets_and_deletes(hosts):
    changed, _out = playbook("remove_node.yml", "-e", json.dumps({"kubeadm_remove_nodes": ["node4", "node3"]}))
    assert changed["node4"] > 0 and changed["node3"] > 0
    for node, socket in [("node4", CRI_DOCKERD), ("node3", CONTAINERD)]:
        resets = calls(hosts, node, "reset")
        assert len(resets) == 1 and resets[0]["cri_socket"] == socket
        assert "--force" in resets[0]["argv"]
        assert not hosts[node].file("/etc/kubernetes/kubelet.conf").exists
        # through the API of a control-plane node that stays (the first whose API server answered)
        assert [cp for cp in ["node1", "node2"] if calls(hosts, cp, "drain", node, component="kubectl")]
        assert [cp for cp in ["node1", "node2"] if calls(hosts, cp, "delete", "node", node, component="kubectl")]
    # external etcd: kubeadm reset removes no member and leaves the etcd data of node3's external member alone
    assert calls(hosts, "node3", "reset")[0]["removed_etcd_member"] is False
    assert "/var/lib/etcd" not in calls(hosts, "node3", "reset")[0]["removed"]
    assert hosts["node3"].service("etcd").is_running
    assert calls(hosts, "node4", "reset")[0].get("removed_etcd_member") is None
    assert sorted(i["metadata"]["name"] for i in cluster_state(hosts) if i["kind"] == "Node") == ["node1", "node2", "node5"]


def test_reset_resets_and_a_second_reset_changes_nothing(hosts):
    changed, _out = playbook("reset.yml", "--limit", "node5")
    assert changed == {"node5": changed["node5"]} and changed["node5"] > 0
    assert len(calls(hosts, "node5", "reset")) == 1
    assert not hosts["node5"].file("/etc/kubernetes/kubelet.conf").exists
    assert not hosts["node5"].service("kubelet").is_running
    changed, _out = playbook("reset.yml", "--limit", "node5")
    assert changed == {"node5": 0}
    assert len(calls(hosts, "node5", "reset")) == 1
