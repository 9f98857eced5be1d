# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_doctor's module: option checks, the expected pause image from the version, and a run that changes nothing."""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.modules import node_doctor
from module_harness import ExitJson, FailJson, call_main


def test_unknown_checks_and_bad_endpoints_are_refused():
    kind, result = call_main(node_doctor.main, {"checks": ["swap", "dns"]})
    assert kind is FailJson and result["msg"].startswith("unknown checks dns; the checks are cri_endpoint, containerd_cri_plugin")
    kind, result = call_main(node_doctor.main, {"apiserver_proxy_endpoint": "127.0.0.1"})
    assert kind is FailJson and result["msg"] == "'127.0.0.1' is not host:port"
    kind, result = call_main(node_doctor.main, {"kubernetes_version": "latest"})
    assert kind is FailJson and result["msg"] == "kubernetes_version: 'latest' is not a Kubernetes release version like 1.37.0"


def test_a_run_reports_rows_and_never_changes(monkeypatch):
    seen = {}

    def fake_run_checks(host, params, checks, names):
        seen.update(params)
        return [{"name": "swap", "status": "fail", "cause": "swap is on", "fix": "swapoff -a", "evidence": ""}]

    monkeypatch.setattr(node_doctor, "run_checks", fake_run_checks)
    kind, result = call_main(node_doctor.main, {"checks": ["swap"], "kubernetes_version": "1.35.7", "image_repository": "mirror.example/k8s"},
                             check_mode=True)
    assert kind is ExitJson and result["changed"] is False and "failed" not in result  # a failed check is data, not a module failure
    assert result["summary"] == {"pass": 0, "warn": 0, "fail": 1, "skip": 0}
    assert seen["sandbox_image"] == "mirror.example/k8s/pause:3.10.1"
    assert isinstance(result["time"], float) and result["hostname"]
