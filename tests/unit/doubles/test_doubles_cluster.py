# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TEST DOUBLES' cluster API (double_cluster.serve, as the kubelet double runs it) with the kubectl and kubeadm
doubles as clients, on the host: everything that does not write /etc/kubernetes (init and a successful join do; the
lab scenario molecule/site covers them). A join is refused, as kubeadm refuses it, for a wrong token, a wrong CA
pin, a stale certificate key, a missing CRI socket and flags kubeadm does not accept next to --config."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

DOUBLES = Path(__file__).resolve().parents[2] / "doubles"
sys.path.insert(0, str(DOUBLES))
import build  # noqa: E402
import double_cluster  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the doubles make their CA and CSRs with openssl")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    out = tmp_path_factory.mktemp("doubles")
    assert build.main(["--version", "1.37.0", "--binaries", str(out / "bin")]) == 0
    return out / "bin"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A cluster state with a real CA, served on a free port; (kubeconfig path, state file, CA pem)."""
    root = tmp_path_factory.mktemp("api")
    double_cluster.make_ca(str(root / "pki"))
    ca_pem = (root / "pki" / "ca.crt").read_text()
    state = {"version": 1, "ca_pem": ca_pem, "tokens": {}, "csrs": {}, "objects": {}, "etcd_members": [], "upload_certs": {},
             "cluster": {"controlPlaneEndpoint": "127.0.0.1:6443"}, "kubelet_config": {}, "kubernetes_version": "v1.37.0",
             "nodes": {"cp1": double_cluster.node_object("cp1", "10.0.0.11", {"zone": "a"}, [])}}
    state_file = root / "state.json"
    double_cluster.write_json(str(state_file), state)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    threading.Thread(target=double_cluster.serve, args=(port, str(state_file)), daemon=True).start()
    double_cluster.wait_ready("http://127.0.0.1:%d" % port, 10)
    kubeconfig = root / "admin.conf"
    kubeconfig.write_text(double_cluster.kubeconfig("https://127.0.0.1:%d" % port, ca_pem, "kubernetes-admin"))
    return {"kubeconfig": str(kubeconfig), "state": state_file, "ca_pem": ca_pem, "port": port, "root": root}


def run(binary, *args, log):
    return subprocess.run([str(binary)] + list(args), capture_output=True, text=True, check=False,
                          env={"KUBEFORGE_DOUBLES_LOG": str(log), "PATH": "/usr/bin:/bin"})


def state(api):
    return json.loads(api["state"].read_text())


def test_kubectl_reads_and_changes_the_served_state(binaries, api, tmp_path):
    log, kc = tmp_path / "log", api["kubeconfig"]
    kubectl = binaries / "kubectl"
    assert run(kubectl, "--kubeconfig", kc, "get", "--raw=/readyz", log=log).stdout == "ok\n"
    assert run(kubectl, "--kubeconfig", kc, "label", "node", "cp1", "--overwrite", "role=x", "zone-", log=log).returncode == 0
    assert run(kubectl, "--kubeconfig", kc, "taint", "node", "cp1", "--overwrite", "gpu=yes:NoSchedule", log=log).returncode == 0
    node = state(api)["nodes"]["cp1"]
    assert node["metadata"]["labels"] == {"role": "x"} and node["spec"]["taints"] == [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]
    assert run(kubectl, "--kubeconfig", kc, "taint", "node", "cp1", "gpu:NoSchedule-", log=log).returncode == 0
    assert state(api)["nodes"]["cp1"]["spec"]["taints"] == []
    listed = json.loads(run(kubectl, "--kubeconfig", kc, "get", "nodes,csr", "-o", "json", log=log).stdout)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["cp1"]
    missing = run(kubectl, "--kubeconfig", kc, "label", "node", "nope", "a=b", log=log)
    assert missing.returncode == 1 and 'nodes "nope" not found' in missing.stderr
    assert [json.loads(line)["argv"][3] for line in log.read_text().splitlines()] == ["get", "label", "taint", "taint", "get", "label"]


def test_diff_and_apply_of_an_add_on_directory(binaries, api, tmp_path):
    log, kc = tmp_path / "log", api["kubeconfig"]
    addons = tmp_path / "addons"
    addons.mkdir()
    (addons / "kata.yaml").write_text(yaml.safe_dump({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                                      "metadata": {"name": "kata"}, "handler": "kata"}))
    kubectl = binaries / "kubectl"
    assert run(kubectl, "--kubeconfig", kc, "diff", "-f", str(addons), log=log).returncode == 1
    assert run(kubectl, "--kubeconfig", kc, "apply", "-f", str(addons), log=log).stdout == "runtimeclass/kata created\n"
    assert run(kubectl, "--kubeconfig", kc, "diff", "-f", str(addons), log=log).returncode == 0
    assert run(kubectl, "--kubeconfig", kc, "apply", "-f", str(addons), log=log).stdout == "runtimeclass/kata unchanged\n"


def test_tokens_and_certificate_keys_are_stored_and_printed_once(binaries, api, tmp_path):
    log, kc = tmp_path / "log", api["kubeconfig"]
    made = run(binaries / "kubeadm", "token", "create", "--kubeconfig", kc, "--ttl", "15m", "--description", "join of w1", log=log)
    token = made.stdout.strip()
    assert made.returncode == 0 and len(token) == 23 and token[6] == "."
    stored = state(api)["tokens"][token[:6]]
    assert stored["secret"] == token[7:] and 890 < stored["expires"] - time.time() <= 900
    upload = run(binaries / "kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--kubeconfig", kc, log=log)
    key = upload.stdout.splitlines()[-1]
    assert upload.returncode == 0 and len(key) == 64
    record = json.loads(log.read_text().splitlines()[0])
    assert token not in log.read_text() and key not in log.read_text() and record["token_id"] == token[:6]


@pytest.fixture
def cri_socket(tmp_path):
    path = tmp_path / "cri.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(5)
    yield "unix://" + str(path)
    listener.close()


def join_config(tmp_path, api, token, pins, cri, control_plane=None, extra=None):
    doc = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
           "nodeRegistration": {"name": "w9", "criSocket": cri},
           "discovery": {"bootstrapToken": {"apiServerEndpoint": "127.0.0.1:%d" % api["port"], "token": token, "caCertHashes": pins}}}
    if control_plane is not None:
        doc["controlPlane"] = control_plane
    doc.update(extra or {})
    path = tmp_path / ("join-%d.yaml" % len(list(tmp_path.glob("join-*.yaml"))))
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.skipif(os.path.exists("/etc/kubernetes/kubelet.conf"), reason="this host is a Kubernetes node")
def test_joins_are_refused_as_kubeadm_refuses_them(binaries, api, tmp_path, cri_socket):
    log, kubeadm = tmp_path / "log", binaries / "kubeadm"
    pin = double_cluster.ca_pin(api["ca_pem"])
    token = run(kubeadm, "token", "create", "--kubeconfig", api["kubeconfig"], log=log).stdout.strip()
    cases = [
        (join_config(tmp_path, api, "abcdef.0123456789abcdef", [pin], cri_socket),
         'could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"'),
        (join_config(tmp_path, api, token, ["sha256:" + "0" * 64], cri_socket), 'none of the public keys "%s" are pinned' % pin),
        (join_config(tmp_path, api, token, [pin], "unix:///nonexistent/cri.sock"), "[ERROR CRI]: container runtime is not running"),
        (join_config(tmp_path, api, token, [pin], cri_socket, control_plane={"certificateKey": "ab" * 32}),
         'Secret "kubeadm-certs" was not found'),
        (join_config(tmp_path, api, token, [pin], cri_socket, extra={"caCertPath": 7}), "JoinConfiguration.caCertPath"),
    ]
    for path, message in cases:
        answer = run(kubeadm, "join", "--config", path, log=log)
        assert answer.returncode == 1 and message in answer.stderr, (message, answer.stderr)
        assert "To see the stack trace of this error execute with --v=5 or higher" in answer.stderr
    mixed = run(kubeadm, "join", "--config", cases[0][0], "--token", token, log=log)
    assert mixed.returncode == 1 and "can not mix '--config' with arguments ['token']" in mixed.stderr
    assert "w9" not in state(api)["nodes"]
