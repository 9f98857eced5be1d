# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator checks after the image_tools role on a containerd node: buildkitd runs as a unit with the
containerd worker in k8s.io, a build lands where the kubelet (crictl) sees it, the unit stops cleanly, nerdctl (a
stand-in: no real nerdctl can be had here) talks to the same containerd, and bad artifacts are refused with the file
and the variable named and nothing installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
IMAGE = "registry.lab.invalid/kubeforge/built-here:1"


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


def run(host, command):
    result = host.run(command)
    assert result.rc == 0, "%s failed (rc %s): %s %s" % (command, result.rc, result.stdout, result.stderr)
    return result.stdout


def test_buildkit_runs_as_an_enabled_unit_with_a_group_socket(host):
    service = host.service("buildkit")
    assert service.is_running and service.is_enabled
    socket = host.file("/run/buildkit/buildkitd.sock")
    assert socket.is_socket and socket.user == "root" and socket.group == "buildkit" and socket.mode == 0o660


def test_the_worker_is_containerd_in_the_kubelet_namespace(host):
    workers = run(host, "buildctl debug workers -v")
    assert workers.count("ID:") == 1, "only the containerd worker (no OCI worker):\n" + workers
    labels = dict(line.strip().split(":\t", 1) for line in workers.splitlines() if line.startswith("\torg.mobyproject"))
    assert labels["org.mobyproject.buildkit.worker.executor"].strip() == "containerd"
    assert labels["org.mobyproject.buildkit.worker.containerd.namespace"].strip() == "k8s.io"
    # image_tools_buildkit_gc_max_used_space "2GB" (binary multiples, as BuildKit reads sizes)
    assert "Maximum used space:\t2.147483648GB" in workers, workers


def test_a_build_from_scratch_lands_in_k8s_io_and_crictl_lists_it(host):
    run(host, "rm -rf /tmp/ctx && mkdir /tmp/ctx && echo built-by-buildkit > /tmp/ctx/hello.txt && "
              "printf 'FROM scratch\\nCOPY hello.txt /\\n' > /tmp/ctx/Dockerfile")
    run(host, "ctr -n k8s.io images rm %s >/dev/null 2>&1; true" % IMAGE)
    run(host, "buildctl build --frontend dockerfile.v0 --local context=/tmp/ctx --local dockerfile=/tmp/ctx "
              "--output type=image,name=%s" % IMAGE)
    assert IMAGE in run(host, "ctr -n k8s.io images ls -q")
    repository, tag = IMAGE.rsplit(":", 1)
    images = run(host, "crictl images")
    assert any(line.split()[:2] == [repository, tag] for line in images.splitlines()), images


def test_the_unit_stops_cleanly_and_starts_again(host):
    run(host, "systemctl stop buildkit")
    state = run(host, "systemctl show buildkit -p ActiveState -p Result")
    assert "ActiveState=inactive" in state and "Result=success" in state, state
    run(host, "systemctl start buildkit")
    assert host.service("buildkit").is_running


def test_buildkitd_toml_carries_the_containerd_registries(host, hostvars):
    text = host.file("/etc/buildkit/buildkitd.toml").content_string
    data = tomllib.loads(text)
    assert data["worker"]["containerd"]["namespace"] == "k8s.io"
    assert data["worker"]["oci"] == {"enabled": False}
    assert data["registry"]["docker.io"]["mirrors"] == ["mirror.lab.invalid:5000", "harbor.lab.invalid/proxy.docker.io"]
    assert data["registry"]["mirror.lab.invalid:5000"] == {"insecure": True}
    assert data["registry"]["harbor.lab.invalid"] == {"ca": ["/etc/ssl/certs/ca-certificates.crt"]}
    assert data["registry"]["private.lab.invalid:5000"] == {"ca": ["/etc/ssl/certs/ca-certificates.crt"]}
    # buildkitd takes credentials from the client: the password is not in the file, and the file says why
    assert hostvars["containerd_registries"]["private.lab.invalid:5000"]["auth"]["password"] not in text
    assert "credentials and headers are not written" in text
    assert host.file("/etc/buildkit/buildkitd.toml").mode == 0o644


def test_nerdctl_stand_in_installed_alone_with_its_configuration(host):
    # the stand-in tarball holds nerdctl and containerd-rootless.sh like the real minimal one: only nerdctl is installed
    assert run(host, "nerdctl").strip() == "nerdctl version stand-in"
    assert not host.file("/usr/local/bin/containerd-rootless.sh").exists
    data = tomllib.loads(host.file("/etc/nerdctl/nerdctl.toml").content_string)
    assert data == {"address": "unix:///run/containerd/containerd.sock", "namespace": "k8s.io",
                    "hosts_dir": ["/etc/containerd/certs.d"], "cni_path": "/opt/cni/bin"}
    assert run(host, "/opt/cni/bin/bridge").strip() == "CNI bridge version stand-in"


def playbook(tmp_path, artifacts, *extra):
    """Run playbooks/image_tools.yml against the scenario's machine with another artifacts directory."""
    # JSON results: a message is one line, not folded as in the scenario's YAML result format
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_COLLECTIONS_PATH=str(PROJECT / ".build" / "collections"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(PROJECT / "playbooks" / "image_tools.yml"),
            "-e", "image_tools_artifacts_dir=%s" % artifacts, "-e", "image_tools_bin_dir=/opt/imgtools-bad/bin", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env)


@pytest.fixture(scope="module")
def artifacts():
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "artifacts"


def test_a_checksum_mismatch_installs_nothing(host, tmp_path, artifacts):
    tampered = tmp_path / "tampered"
    shutil.copytree(artifacts, tampered)
    nerdctl = tampered / "nerdctl-2.4.1-linux-amd64.tar.gz"
    data = bytearray(nerdctl.read_bytes())
    data[len(data) // 2] ^= 0xFF
    nerdctl.write_bytes(bytes(data))
    before = run(host, "sha256sum /etc/buildkit/buildkitd.toml /etc/nerdctl/nerdctl.toml /usr/local/bin/nerdctl")
    proc = playbook(tmp_path, tampered)
    assert proc.returncode != 0
    assert ("image_tools_artifacts_dir: %s has sha256 " % nerdctl) in proc.stdout, proc.stdout[-3000:]
    assert (", but %s/SHA256SUMS says " % tampered) in proc.stdout and "nothing was changed" in proc.stdout
    # BuildKit's artifact was good and went to the other directory whole; nerdctl's did not, and nothing after it ran
    assert not host.file("/opt/imgtools-bad/bin/nerdctl").exists
    assert sorted(host.file("/opt/imgtools-bad/bin").listdir()) == ["buildctl", "buildkitd"]
    assert run(host, "sha256sum /etc/buildkit/buildkitd.toml /etc/nerdctl/nerdctl.toml /usr/local/bin/nerdctl") == before
    run(host, "rm -rf /opt/imgtools-bad")


def test_a_missing_artifact_names_the_file_and_the_variable(host, tmp_path, artifacts):
    proc = playbook(tmp_path, artifacts, "-e", "image_tools_buildkit_version=v0.99.0")
    assert proc.returncode != 0
    assert ("image_tools_artifacts_dir: buildkit-v0.99.0.linux-amd64.tar.gz not found in %s" % artifacts) in proc.stdout, proc.stdout[-3000:]
    assert not host.file("/opt/imgtools-bad").exists
