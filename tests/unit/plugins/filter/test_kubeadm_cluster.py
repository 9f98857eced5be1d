# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The orchestration plan from the nodes' states, Node label/taint updates, and the masking of kubeadm's output."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.kubeadm_cluster import (FilterModule, kubeadm_join_plan, kubeadm_mask_secrets,
                                                                                  kubeadm_iptables_cleanup, kubeadm_node_settings, kubeadm_node_updates)

CPS = ["cp1", "cp2", "cp3"]
NODES = CPS + ["w1", "w2"]


def state(joined=False, admin=False, live=False, error=""):
    return {"joined": joined, "admin_conf": admin, "apiserver_live": live, "apiserver_error": error, "changed": False}


def hostvars(**states):
    return {host: {"st": value} for host, value in states.items()}


def test_fresh_hosts_init_on_the_first_control_plane_and_join_the_rest_in_inventory_order():
    plan = kubeadm_join_plan(hostvars(**{h: state() for h in NODES}), CPS, NODES, "st")
    assert plan == {"initialised": False, "primary": "cp1", "init": "cp1", "join_control_planes": ["cp2", "cp3"],
                    "join_workers": ["w1", "w2"], "joined": [], "error": ""}


def test_a_converged_cluster_has_nothing_to_do():
    states = {h: state(joined=True, admin=h in CPS, live=h in CPS) for h in NODES}
    plan = kubeadm_join_plan(hostvars(**states), CPS, NODES, "st")
    assert (plan["init"], plan["primary"], plan["join_control_planes"], plan["join_workers"]) == ("", "cp1", [], [])
    assert plan["initialised"] is True and plan["error"] == ""


def test_the_first_live_control_plane_is_the_primary_and_a_reset_first_node_joins_again():
    states = {"cp1": state(), "cp2": state(True, True, True), "cp3": state(True, True, True), "w1": state(True), "w2": state()}
    plan = kubeadm_join_plan(hostvars(**states), CPS, NODES, "st")
    assert (plan["init"], plan["primary"], plan["join_control_planes"], plan["join_workers"]) == ("", "cp2", ["cp1"], ["w2"])


def test_scale_takes_control_plane_states_from_outside_the_play():
    """playbooks/scale.yml with --limit new nodes: the control planes are probed by a delegated loop."""
    loop = [dict(state(True, True, True), item="cp1"), dict(state(True, True, False), item="cp2"), {"item": "cp3", "skipped": True}]
    plan = kubeadm_join_plan(hostvars(w2=state()), CPS, NODES, "st", loop)
    assert (plan["init"], plan["primary"], plan["join_control_planes"], plan["join_workers"]) == ("", "cp1", [], ["w2"])


def test_contradicting_states_stop_with_the_cause_and_the_fix():
    stale = {"cp1": state(True, True, False, "connection refused"), "cp2": state(), "cp3": state(), "w1": state(True), "w2": state()}
    plan = kubeadm_join_plan(hostvars(**stale), CPS, NODES, "st")
    assert plan["init"] == "" and plan["join_workers"] == []
    assert plan["error"] == ("no control-plane node has a live API server, but nodes are joined: cp1, w1; admin.conf without a live API "
                             "server on cp1 (connection refused): start the kubelet on the control-plane nodes, or reset the nodes with "
                             "playbooks/reset.yml before a new kubeadm init")
    missing_first = kubeadm_join_plan(hostvars(cp2=state(), w1=state()), CPS, NODES, "st")
    assert missing_first["error"] == "the cluster is not initialised and the first control-plane node cp1 is not in this run"


def test_plan_refuses_wrong_input():
    with pytest.raises(AnsibleFilterError, match="host lists"):
        kubeadm_join_plan({}, "cp1", NODES, "st")


def node(name, labels=None, taints=None):
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints} if taints else {}}


CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def test_node_updates_only_for_what_differs():
    nodes = {"items": [node("cp1", {"zone": "a"}, [CP_TAINT]), node("w1", {"zone": "b", "tier": "web"}), node("w2", {"zone": "a"})]}
    wanted = {
        "cp1": {"labels": {"zone": "a"}, "taints": None, "schedulable_control_plane": True},
        "w1": {"labels": {"zone": "a", "node-role.kubernetes.io/worker": ""}, "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]},
        "w2": {"labels": {"zone": "a"}, "taints": []},
        "w9": {"labels": {"zone": "a"}},
    }
    assert kubeadm_node_updates(nodes, wanted) == [
        ["taint", "node", "cp1", "--overwrite", "node-role.kubernetes.io/control-plane:NoSchedule-"],
        ["label", "node", "w1", "--overwrite", "node-role.kubernetes.io/worker=", "zone=a"],
        ["taint", "node", "w1", "--overwrite", "gpu=yes:NoSchedule"],
    ]
    w1_labels = {"zone": "a", "tier": "web", "node-role.kubernetes.io/worker": ""}
    w1_taints = [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]
    done = {"items": [node("cp1", {"zone": "a"}), node("w1", w1_labels, w1_taints), node("w2", {"zone": "a"})]}
    assert kubeadm_node_updates(done, wanted) == []


def test_mask_secrets_hides_tokens_and_certificate_keys_but_not_the_ca_pin():
    text = ("kubeadm join 127.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:" + "a1" * 32 +
            " --control-plane --certificate-key " + "0f" * 32 + " password=hunter2")
    masked = kubeadm_mask_secrets(text, ["hunter2"])
    assert "abcdef.0123456789abcdef" not in masked and "0f" * 32 not in masked and "hunter2" not in masked
    assert "sha256:" + "a1" * 32 in masked
    assert kubeadm_mask_secrets(None) == ""


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"kubeadm_join_plan", "kubeadm_node_updates", "kubeadm_node_settings", "kubeadm_mask_secrets",
                                             "kubeadm_iptables_cleanup"}


def test_node_settings_from_host_variables():
    hv = {"cp1": {"ansible_host": "10.0.0.11", "kubeadm_node_labels": {"zone": "a"}},
          "w1": {"ansible_host": "10.0.0.21", "kubeadm_node_name": "worker-1", "kubeadm_node_api_labels": {"node-role.kubernetes.io/worker": ""},
                 "kubeadm_node_taints": [{"key": "gpu", "effect": "NoSchedule"}], "kubeadm_kubelet_serving_addresses": ["192.168.0.21"]}}
    settings = kubeadm_node_settings(hv, ["cp1", "w1"], ["cp1"], True)
    assert settings["wanted"] == {
        "cp1": {"labels": {"zone": "a"}, "taints": None, "schedulable_control_plane": True},
        "worker-1": {"labels": {"node-role.kubernetes.io/worker": ""}, "taints": [{"key": "gpu", "effect": "NoSchedule"}],
                     "schedulable_control_plane": False}}
    assert settings["csr_nodes"] == {"cp1": {"addresses": ["10.0.0.11"], "names": []},
                                     "worker-1": {"addresses": ["10.0.0.21", "192.168.0.21"], "names": ["w1"]}}


SAVED = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:CNI-abc123 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.244.1.0/24 -j CNI-abc123
-A POSTROUTING -s 10.100.0.0/24 -m comment --comment "the operator's own" -j MASQUERADE
-A KUBE-POSTROUTING -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"""


def test_iptables_cleanup_keeps_everything_that_is_not_kubernetes():
    cleaned = kubeadm_iptables_cleanup(SAVED)
    assert cleaned.splitlines() == ["*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
                                    '-A POSTROUTING -s 10.100.0.0/24 -m comment --comment "the operator\'s own" -j MASQUERADE', "COMMIT",
                                    "*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp --dport 22 -j ACCEPT", "COMMIT"]
    assert kubeadm_iptables_cleanup(cleaned) == ""
    assert kubeadm_iptables_cleanup("") == ""


def test_node_updates_read_kubectls_json_text():
    import json

    text = json.dumps({"items": [node("w1", {"zone": "b"})]})
    assert kubeadm_node_updates(text, {"w1": {"labels": {"zone": "a"}}}) == [["label", "node", "w1", "--overwrite", "zone=a"]]
    with pytest.raises(AnsibleFilterError, match="not JSON"):
        kubeadm_node_updates("error: You must be logged in", {})


def test_kata_nodes_get_the_runtimeclass_selector_labels():
    hv = {"w1": {"kubeforge_kata_enabled": True}, "w2": {"kubeforge_kata_enabled": False}, "w3": {}}
    wanted = kubeadm_node_settings(hv, ["w1", "w2", "w3"], [], kata_labels={"katacontainers.io/kata-runtime": "true"})["wanted"]
    assert [wanted[n]["labels"] for n in ["w1", "w2", "w3"]] == [{"katacontainers.io/kata-runtime": "true"}, {}, {}]
