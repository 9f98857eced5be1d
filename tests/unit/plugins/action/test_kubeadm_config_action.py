# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeadm_config action plugin: what it asks the node for, with which arguments, and what it never shows.

The connection is faked; tmp_path stands for the node's file system, a scripted kubeadm answers validate.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import shutil
import stat
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from ansible_collections.kubeforge.cluster.plugins.action.kubeadm_config import ActionModule

TOKEN = "abcdef.0123456789abcdef"
CERT_KEY = "0f" * 32


class FakeShell:
    def __init__(self):
        self.tmpdir = None

    @staticmethod
    def join_path(*parts):
        return posixpath.join(*parts)


class Node:
    def __init__(self, root, kubeadm="ok"):
        self.root = Path(root)
        self.kubeadm = kubeadm  # "ok", "missing" or an error text
        self.modules = []
        self.check_modes = []
        self.task = None
        self.kernel_probe = {"changed": False}

    def make_tmp(self, action):
        (self.root / "tmp").mkdir(exist_ok=True)
        action._connection._shell.tmpdir = str(self.root / "tmp")
        return action._connection._shell.tmpdir

    def stat(self, path, all_vars, follow, checksum=True):
        p = Path(path)
        if not p.exists():
            return {"exists": False}
        return {"exists": True, "isdir": p.is_dir(), "checksum": hashlib.sha1(p.read_bytes()).hexdigest(),
                "mode": "%04o" % stat.S_IMODE(p.stat().st_mode)}

    def execute_module(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        self.modules.append((module_name, dict(module_args)))
        self.check_modes.append(self.task.check_mode)
        if module_name == "kubeforge.cluster.kernel_modules":
            return self.kernel_probe
        if module_name == "ansible.legacy.command":
            assert module_args["_uses_shell"] is False
            if self.kubeadm == "missing":
                return {"rc": 127, "stdout": "", "stderr": "env: 'kubeadm': No such file or directory"}
            if self.kubeadm == "ok":
                return {"rc": 0, "stdout": "", "stderr": ""}
            return {"rc": 1, "stdout": "", "stderr": self.kubeadm}
        if module_name == "ansible.legacy.slurp":
            return {"content": base64.b64encode(Path(module_args["src"]).read_bytes()).decode()}
        if module_name == "ansible.legacy.file":
            Path(module_args["path"]).mkdir(parents=True, exist_ok=True)
            if "mode" in module_args:
                os.chmod(module_args["path"], int(module_args["mode"], 8))
            return {"changed": True}
        if module_name == "ansible.legacy.copy":
            shutil.copy(module_args["src"], module_args["dest"])
            os.chmod(module_args["dest"], int(module_args["mode"], 8))
            return {"changed": True}
        raise AssertionError("unexpected module %s" % module_name)

    def transfer(self, remote_path, data):
        Path(remote_path).write_text(data)
        return remote_path


def args(root, **overrides):
    values = dict(kubernetes_version="1.37.0", node_role="init", cri_socket="unix:///run/containerd/containerd.sock",
                  sandbox_image="registry.k8s.io/pause:3.10.2", first_control_plane_address="10.1.0.11",
                  config_dir=str(Path(root) / "etc" / "kubernetes" / "kubeadm"), bootstrap_token=TOKEN, certificate_key=CERT_KEY)
    values.update(overrides)
    return values


def run(node, task_args, check_mode=False, diff=True):
    task = MagicMock()
    task.args = task_args
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    task.action = "kubeforge.cluster.kubeadm_config"
    connection = MagicMock()
    connection._shell = FakeShell()
    action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    action._make_tmp_path = lambda remote_user=None: node.make_tmp(action)
    action._execute_remote_stat = node.stat
    action._execute_module = node.execute_module
    action._transfer_data = node.transfer
    action._fixup_perms2 = MagicMock(return_value=None)
    action._remove_tmp_path = MagicMock()
    node.task = task
    return action.run(task_vars={})


def test_first_run_validates_with_kubeadm_then_writes_0600(tmp_path):
    node = Node(tmp_path)
    result = run(node, args(tmp_path))
    assert not result.get("failed"), result.get("msg")
    target = tmp_path / "etc" / "kubernetes" / "kubeadm" / "init.yaml"
    assert result["changed"] and result["files"]["init.yaml"] == {
        "path": str(target), "changed": True, "validated_by_kubeadm": True,
        "kinds": ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]}
    assert [m[0] for m in node.modules] == ["ansible.legacy.command", "ansible.legacy.file", "ansible.legacy.file", "ansible.legacy.copy"]
    assert node.modules[1][1] == {"path": str(target.parent.parent), "state": "directory"}  # /etc/kubernetes keeps its mode
    validate = node.modules[0][1]["argv"]
    assert validate[:4] == ["env", "LANG=C", "LC_ALL=C", "LANGUAGE=C"] and validate[4:8] == ["kubeadm", "config", "validate", "--config"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert node.modules[3][1]["checksum"] == hashlib.sha1(target.read_bytes()).hexdigest()
    assert TOKEN in target.read_text()  # the file holds it ...
    text = repr(result)
    assert TOKEN not in text and CERT_KEY not in text  # ... the result never shows it
    assert "********" in result["diff"][0]["after"]


def test_a_converged_node_costs_one_stat(tmp_path):
    node = Node(tmp_path)
    run(node, args(tmp_path))
    node.modules.clear()
    result = run(node, args(tmp_path))
    assert result["changed"] is False and node.modules == []
    assert result["files"]["init.yaml"]["changed"] is False and "diff" not in result


def test_a_wrong_mode_alone_is_fixed(tmp_path):
    node = Node(tmp_path)
    run(node, args(tmp_path))
    target = tmp_path / "etc" / "kubernetes" / "kubeadm" / "init.yaml"
    target.chmod(0o644)
    result = run(node, args(tmp_path))
    assert result["changed"] and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_check_mode_runs_kubeadm_validate_for_real_and_writes_nothing(tmp_path):
    node = Node(tmp_path)
    result = run(node, args(tmp_path), check_mode=True)
    assert result["changed"] and result["files"]["init.yaml"]["validated_by_kubeadm"] is True
    assert [m[0] for m in node.modules] == ["ansible.legacy.command"]
    assert node.check_modes == [False], "kubeadm config validate only reads: it runs in check mode too"
    assert node.task.check_mode is True
    assert not (tmp_path / "etc").exists()


def test_without_kubeadm_the_schemas_alone_decide(tmp_path):
    node = Node(tmp_path, kubeadm="missing")
    result = run(node, args(tmp_path))
    assert not result.get("failed") and result["files"]["init.yaml"]["validated_by_kubeadm"] is None


def test_kubeadm_refusing_the_configuration_stops_before_writing(tmp_path):
    node = Node(tmp_path, kubeadm="invalid configuration: token %s is expired" % TOKEN)
    result = run(node, args(tmp_path))
    assert result["failed"] and result["msg"].startswith("kubeadm config validate refused the configuration for ")
    assert TOKEN not in result["msg"] and TOKEN not in result["stderr"]
    assert [m[0] for m in node.modules] == ["ansible.legacy.command"]
    assert not (tmp_path / "etc" / "kubernetes" / "kubeadm" / "init.yaml").exists()


def test_bad_settings_fail_on_the_controller_naming_every_variable(tmp_path):
    node = Node(tmp_path)
    result = run(node, args(tmp_path, kubernetes_version="1.37.1", pod_subnet="10.96.0.0/16", kubelet_config={"cgroupDriverr": "x"}))
    assert result["failed"] and node.modules == []
    assert result["problems"] == [
        "kubeadm_pod_subnet: 10.96.0.0/16 overlaps kubeadm_service_subnet 10.96.0.0/12: pod and Service addresses would collide; "
        "choose disjoint ranges"]
    result = run(node, args(tmp_path, kubelet_config={"cgroupDriverr": "x"}))
    assert result["msg"] == ("The kubeadm configuration cannot be rendered: kubeadm_kubelet_config: KubeletConfiguration.cgroupDriverr: "
                             "unknown field (did you mean cgroupDriver?)")


@pytest.mark.parametrize("probe_fails", [True, False])
def test_ipvs_mode_probes_the_kernel_modules_in_check_mode(tmp_path, probe_fails):
    node = Node(tmp_path)
    if probe_fails:
        node.kernel_probe = {"failed": True, "msg": "kernel module ip_vs (needed for kube-proxy mode ipvs (kubeadm_kube_proxy_mode)) is "
                                                    "missing on kernel 6.1.0", "status": {"ip_vs": "missing"}}
    result = run(node, args(tmp_path, kube_proxy_mode="ipvs"))
    name, probe_args = node.modules[0]
    assert name == "kubeforge.cluster.kernel_modules" and node.check_modes[0] is True, "probing only: nothing loaded or persisted"
    assert probe_args == {"modules": [{"name": m, "reason": "kube-proxy mode ipvs (kubeadm_kube_proxy_mode)"}
                                      for m in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")], "persist": False}
    if probe_fails:
        assert result["failed"] and "kubeadm_kube_proxy_mode" in result["msg"] and len(node.modules) == 1
    else:
        assert not result.get("failed") and result["changed"]


def test_a_joining_node_without_a_token_writes_nothing_and_says_why(tmp_path):
    node = Node(tmp_path)
    result = run(node, args(tmp_path, node_role="worker", bootstrap_token=""))
    assert not result["changed"] and result["files"] == {} and node.modules == []
    assert result["pending"] == ["join.yaml waits for kubeadm_bootstrap_token and kubeadm_discovery_ca_cert_hashes "
                                 "(set after kubeadm init, by kubeadm part 2 or by hand)"]
