# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeadm/kubelet/kubectl TEST DOUBLES (tests/doubles): built as the lab gets them, they answer what the tests
ask, validate with the project's schemas, refuse what they do not implement, and record every call."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOUBLES = Path(__file__).resolve().parents[2] / "doubles"
sys.path.insert(0, str(DOUBLES))
import build  # noqa: E402


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    out = tmp_path_factory.mktemp("doubles")
    assert build.main(["--version", "1.36.3", "--binaries", str(out / "bin")]) == 0
    return out / "bin"


def run(binary, *args, log):
    return subprocess.run([str(binary)] + list(args), capture_output=True, text=True, check=False,
                          env={"KUBEFORGE_DOUBLES_LOG": str(log), "PATH": "/usr/bin:/bin"})


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_checksums_cover_every_binary(binaries):
    sums = dict(reversed(line.split("  ")) for line in (binaries / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == ["kubeadm", "kubectl", "kubelet"]


def test_versions(binaries, tmp_path):
    log = tmp_path / "calls.log"
    assert run(binaries / "kubeadm", "version", "-o", "short", log=log).stdout == "v1.36.3\n"
    assert json.loads(run(binaries / "kubeadm", "version", "-o", "json", log=log).stdout)["clientVersion"]["minor"] == "36"
    assert run(binaries / "kubelet", "--version", log=log).stdout == "Kubernetes v1.36.3\n"
    assert run(binaries / "kubectl", "version", "--client", log=log).stdout == "Client Version: v1.36.3\n"
    assert [c["argv"] for c in calls(log)][:2] == [["kubeadm", "version", "-o", "short"], ["kubeadm", "version", "-o", "json"]]


def test_config_validate_uses_the_schemas_of_its_minor(binaries, tmp_path):
    log = tmp_path / "calls.log"
    good = tmp_path / "good.yaml"
    docs = [{"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration", "apiServer": {"extraArgs": {"v": "2"}}},
            {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"}]
    good.write_text(yaml.safe_dump_all(docs))
    answer = run(binaries / "kubeadm", "config", "validate", "--config", str(good), log=log)
    assert answer.returncode == 0, answer.stderr  # 1.36 still reads v1beta3
    docs[1]["cgroupDriverr"] = "systemd"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    answer = run(binaries / "kubeadm", "config", "validate", "--config=%s" % bad, log=log)
    assert answer.returncode == 1
    assert answer.stderr.strip() == "KubeletConfiguration.cgroupDriverr: unknown field (did you mean cgroupDriver?)"
    recorded = calls(log)
    assert [c["rc"] for c in recorded] == [0, 1]
    assert recorded[1]["documents"] == ["ClusterConfiguration", "KubeletConfiguration"] and recorded[1]["test_double"] is True


def test_what_is_not_implemented_says_so(binaries, tmp_path):
    log = tmp_path / "calls.log"
    answer = run(binaries / "kubeadm", "init", "--config", "/etc/kubernetes/kubeadm/init.yaml", log=log)
    assert answer.returncode == 2 and "TEST DOUBLE" in answer.stderr and "'init --config" in answer.stderr
    assert run(binaries / "kubelet", log=log).returncode == 2


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb builds the .debs (Debian)")
def test_debs_are_named_and_described_as_test_doubles(tmp_path):
    assert build.main(["--version", "1.37.0", "--debs", str(tmp_path)]) == 0
    deb = tmp_path / "kubeadm_1.37.0-0testdouble1_all.deb"
    fields = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Version", "Depends", "Description"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: kubeadm\nVersion: 1.37.0-0testdouble1\nDepends: python3 (>= 3.9), python3-yaml\n" in fields
    assert "Description: TEST DOUBLE of kubeadm for kubeforge.cluster tests - not Kubernetes" in fields
    contents = subprocess.run(["dpkg-deb", "--contents", str(tmp_path / "kubelet_1.37.0-0testdouble1_all.deb")],
                              capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/kubelet" in contents and "./usr/lib/systemd/system/kubelet.service" in contents
