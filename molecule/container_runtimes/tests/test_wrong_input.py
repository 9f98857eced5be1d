# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wrong input on the converged lab (after tests/test_runtimes.py, file order): each failure names the file and the
variable, and leaves what was installed as it was. Three runs of ../wrong_input.yml, both nodes at once:

1. node2: a cri-dockerd tarball whose sha256 is not the one SHA256SUMS lists; node1: Kata without
   kata_allow_unsupported_host, on the lab's CPU.
2. node2 and node1: an artifacts directory without the release files.
3. node2: a daemon.json that is not valid JSON.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "artifacts"
DOCKERD_TGZ = "cri-dockerd-0.4.3.amd64.tgz"
KATA = "kata-static-0.0.0-kubeforge-standin-amd64.tar.xz"


def playbook(*extra):
    proc = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "wrong_input.yml"), *extra],
                          capture_output=True, text=True, timeout=600, check=False, env=os.environ.copy())
    return proc.stdout + proc.stderr


def node(hosts, name):
    return next(h for h in hosts if h.backend.get_hostname() == name)


@pytest.fixture(scope="module")
def hosts():
    import testinfra

    return testinfra.get_hosts(["node1", "node2"], ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"], connection="ansible")


def write(host, path, text):
    encoded = base64.b64encode(text.encode()).decode()
    assert host.run("echo %s | base64 -d > %s" % (encoded, path)).rc == 0


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_checksum_mismatch_and_a_host_that_cannot_run_kata(hosts, tmp_path):
    # a tampered tarball under the release's name, with the SHA256SUMS of the real one
    with tarfile.open(tmp_path / DOCKERD_TGZ, "w:gz") as archive:
        (tmp_path / "cri-dockerd").write_bytes(b"#!/bin/sh\necho not the release\n")
        archive.add(tmp_path / "cri-dockerd", arcname="cri-dockerd/cri-dockerd")
    (tmp_path / "SHA256SUMS").write_text((ARTIFACTS / "SHA256SUMS").read_text())
    docker = node(hosts, "node2")
    before = docker.file("/usr/local/bin/cri-dockerd").sha256sum
    output = playbook("--tags", "cri_dockerd_install,kata_preflight", "-e", "cri_dockerd_artifacts_dir=%s" % tmp_path,
                      "-e", "kata_allow_unsupported_host=false")
    expected = sha256((tmp_path / DOCKERD_TGZ).read_bytes())
    assert "cri_dockerd_artifacts_dir: %s/%s has sha256 %s, but %s/SHA256SUMS says" % (tmp_path, DOCKERD_TGZ, expected, tmp_path) in output
    assert "nothing was changed" in output
    assert docker.file("/usr/local/bin/cri-dockerd").sha256sum == before
    assert not [name for name in docker.file("/usr/local/bin").listdir() if "kubeforge" in name], "no staged file left"
    assert docker.service("cri-docker.service").is_running
    # node1: the lab's CPU cannot run Kata, and the role says what is missing and which variable installs anyway
    assert "This host cannot run Kata Containers (every pod is a virtual machine): (1) cpu virtualization:" in output
    assert "neither vmx (Intel VT-x) nor svm (AMD-V)" in output and "/dev/kvm does not exist" in output
    assert "set kata_allow_unsupported_host: true to install Kata anyway" in output


def test_missing_artifacts_name_the_file_and_the_variable(hosts, tmp_path):
    (tmp_path / "SHA256SUMS").write_text("")
    output = playbook("--tags", "cri_dockerd_install,kata_install", "-e", "cri_dockerd_artifacts_dir=%s" % tmp_path,
                      "-e", "kata_artifacts_dir=%s" % tmp_path)
    assert "cri_dockerd_artifacts_dir: %s not found in %s" % (DOCKERD_TGZ, tmp_path) in output
    assert "kata_artifacts_dir: %s not found in %s" % (KATA, tmp_path) in output
    assert node(hosts, "node1").file("/opt/kata/bin/containerd-shim-kata-v2").exists


def test_a_daemon_json_that_is_not_json_is_refused_untouched(hosts):
    docker = node(hosts, "node2")
    good = docker.file("/etc/docker/daemon.json").content_string
    broken = good.replace("{", "{\n  \"debug\": true,,", 1)
    write(docker, "/etc/docker/daemon.json", broken)
    try:
        output = playbook("--tags", "cri_dockerd_docker", "--limit", "node2")
        assert "/etc/docker/daemon.json is not valid JSON at line 2" in output
        assert "it was left untouched" in output
        assert docker.file("/etc/docker/daemon.json").content_string == broken
    finally:
        write(docker, "/etc/docker/daemon.json", good)
    assert docker.service("docker.service").is_running
