# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution config disabled CRI; after the role CRI works and the operator's comment and runtime survive."""

from __future__ import annotations

import tomllib

COMMENT = "# Operator note: GPU nodes use the nvidia runtime below - keep it (ticket OPS-1234)."
SOCKET = "unix:///run/containerd/containerd.sock"


def _run(host, command):
    result = host.run(command)
    assert result.rc == 0, "%s failed (rc %s): %s" % (command, result.rc, result.stderr)
    return result.stdout


def test_cri_plugin_loaded(host):
    plugins = _run(host, "ctr plugins ls")
    cri = [line.split() for line in plugins.splitlines() if line.split()[:2] == ["io.containerd.grpc.v1", "cri"]]
    assert cri and cri[0][-1] == "ok", plugins


def _cri_section(data):
    """The CRI plugin table of a version 1 ([plugins.cri]) or 2 file, whichever the role kept."""
    plugins = data["plugins"]
    return plugins["cri"] if data.get("version", 1) == 1 else plugins["io.containerd.grpc.v1.cri"]


def test_operator_comment_and_runtime_kept(host):
    text = host.file("/etc/containerd/config.toml").content_string
    assert text.splitlines()[0] == COMMENT
    assert "# installed by the GPU operator" in text
    assert '#root = "/var/lib/containerd"' in text
    data = tomllib.loads(text)
    assert "cri" not in data.get("disabled_plugins", [])
    assert "io.containerd.grpc.v1.cri" not in data.get("disabled_plugins", [])
    nvidia = _cri_section(data)["containerd"]["runtimes"]["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["privileged_without_host_devices"] is False
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"


def test_effective_config(host):
    dump = tomllib.loads(_run(host, "containerd config dump"))
    cri = dump["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == host.ansible.get_variables()["kubeforge_sandbox_image"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_backup_of_the_original_file(host):
    backups = _run(host, "find /etc/containerd -maxdepth 1 -name 'config.toml.*'").split()
    assert backups, "no backup of config.toml next to it"
    originals = [b for b in backups if 'disabled_plugins = ["cri"]' in host.file(b).content_string]
    assert originals, "no backup holds the original file: %s" % backups


def test_crictl_points_to_containerd(host):
    text = host.file("/etc/crictl.yaml").content_string
    assert "runtime-endpoint: %s" % SOCKET in text
