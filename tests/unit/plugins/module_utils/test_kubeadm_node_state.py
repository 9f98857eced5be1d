# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeadm_node_state on fake /etc/kubernetes trees with a scripted kubectl."""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_node_state import inspect


def tree(tmp_path, *files):
    for name in files:
        path = tmp_path / "etc" / "kubernetes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return str(tmp_path)


def kubectl(rc, out="", err=""):
    calls = []

    def run(argv):
        calls.append(argv)
        return rc, out, err
    return run, calls


def test_a_bare_node_is_not_joined_and_kubectl_is_not_asked(tmp_path):
    run, calls = kubectl(0, "ok")
    assert inspect(tree(tmp_path), run, "/usr/bin/kubectl") == {
        "joined": False, "admin_conf": False, "control_plane": False, "ca_cert": False, "apiserver_live": False,
        "apiserver_error": "no admin.conf", "addons": []}
    assert calls == []


def test_a_control_plane_with_a_live_apiserver(tmp_path):
    run, calls = kubectl(0, "ok\n")
    state = inspect(tree(tmp_path, "admin.conf", "kubelet.conf", "pki/ca.crt", "manifests/kube-apiserver.yaml"), run, "/usr/bin/kubectl")
    assert state["apiserver_live"] and state["joined"] and state["control_plane"] and state["ca_cert"]
    assert calls == [["/usr/bin/kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "--raw=/readyz", "--request-timeout=5s"]]


def test_a_stale_admin_conf_is_not_a_live_cluster(tmp_path):
    run, _calls = kubectl(1, "", "The connection to the server 10.0.0.11:6443 was refused - did you specify the right host or port?\n")
    state = inspect(tree(tmp_path, "admin.conf"), run, "/usr/bin/kubectl")
    assert not state["apiserver_live"] and not state["joined"]
    assert state["apiserver_error"].startswith("The connection to the server 10.0.0.11:6443 was refused")
    assert inspect(tree(tmp_path, "admin.conf"), run, None)["apiserver_error"] == "kubectl is not installed"
    run, _calls = kubectl(0, "[+]ping ok\nreadyz check failed")
    assert not inspect(tree(tmp_path, "admin.conf"), run, "/usr/bin/kubectl")["apiserver_live"]


def test_addon_manifests_are_listed(tmp_path):
    run, _calls = kubectl(0, "ok")
    root = tree(tmp_path, "addons/cni.yaml", "addons/kata-runtimeclass.yaml", "addons/README", "addons/x.json")
    state = inspect(root, run, "/usr/bin/kubectl", "/etc/kubernetes/addons")
    assert [p.rsplit("/", 1)[1] for p in state["addons"]] == ["cni.yaml", "kata-runtimeclass.yaml", "x.json"]
    assert inspect(root, run, "/usr/bin/kubectl", "/etc/kubernetes/none")["addons"] == []
