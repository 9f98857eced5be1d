# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_daemon_config against the real dockerd of Debian 12 (20.10, no --validate), 13 (26.1) and sid (28.5).

The module's result is judged by the binaries themselves: what the module accepts, ``dockerd --validate`` of Docker 26
and 28 accepts too, and what they refuse the module refuses (with its own check on 20.10, which cannot validate).
No daemon is started; the binaries come from the Debian packages (tools/debfetch.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import debfetch
import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _docker_daemon_config as ddc

pytestmark = pytest.mark.real_binary

SUITES = {"bookworm": "20.10", "trixie": "26.1", "sid": "28.5"}


@pytest.fixture(scope="module", params=sorted(SUITES))
def dockerd(request):
    suite = request.param
    try:
        root = debfetch.fetch("docker.io", suite)
    except debfetch.DebFetchError as exc:
        pytest.skip("docker.io of Debian %s cannot be fetched here: %s" % (suite, exc))
    binary = Path(root) / "usr" / "sbin" / "dockerd"
    assert binary.exists(), "the docker.io package of %s has no usr/sbin/dockerd" % suite
    return SUITES[suite], binary


class Node(ddc.NodeOps):
    """This machine as the node: real files under tmp_path, the real dockerd (never started), no running dockerd."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir

    def read(self, path):
        return Path(path).read_bytes() if os.path.exists(path) else None

    def dockerd(self):
        return str(self.binary)

    def run(self, argv):
        # docker-proxy of the same package must be in PATH, as on a node
        env = dict(os.environ, LANG="C", LC_ALL="C", LANGUAGE="C", PATH="%s:%s" % (self.binary.parent, os.environ["PATH"]))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def running_dockerd_args(self):
        return None

    def candidate(self, path, text):
        candidate = self.workdir / "candidate.json"
        candidate.write_text(text)
        return str(candidate)

    def write(self, path, text, expected, mode, backup):
        Path(path).write_text(text)
        os.chmod(path, mode)


def params(path, **kwargs):
    return dict({"path": str(path), "exec_opts": {"native.cgroupdriver": "systemd"}, "remove": [], "validate": True,
                 "settings": {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "5"},
                              "registry-mirrors": ["https://mirror.lab.invalid"], "insecure-registries": ["registry.lab.invalid:5000"]}},
                **kwargs)


def validate_by_hand(binary, path):
    env = dict(os.environ, PATH="%s:%s" % (binary.parent, os.environ["PATH"]))
    return subprocess.run([str(binary), "--validate", "--config-file", str(path)], capture_output=True, text=True, env=env, check=False)


def test_the_kubernetes_settings_merge_into_an_operators_file_and_dockerd_accepts_them(dockerd, tmp_path):
    version, binary = dockerd
    path = tmp_path / "daemon.json"
    path.write_text('{"data-root": "/srv/docker", "exec-opts": ["native.cgroupdriver=cgroupfs"], "log-opts": {"compress": "true"}}\n')
    result = ddc.run(params(path), Node(binary, tmp_path))
    assert result["changed"] and result["restart_required"]
    if version == "20.10":
        assert result["validated_with"].startswith("dockerd --help keys")
    else:
        assert result["validated_with"] == "dockerd --validate"
        proc = validate_by_hand(binary, path)
        assert proc.returncode == 0, proc.stderr
    data = json.loads(path.read_text())
    assert data["exec-opts"] == ["native.cgroupdriver=systemd"] and data["data-root"] == "/srv/docker"
    assert data["log-opts"] == {"compress": "true", "max-size": "100m", "max-file": "5"}
    assert not ddc.run(params(path), Node(binary, tmp_path))["changed"]


@pytest.mark.parametrize("settings, module_says, dockerd_says", [
    ({"log-opts": {"max-file": 5}}, "log-opts.max-file must be a string", "cannot unmarshal number"),
    ({"registry-mirrorz": ["https://m.lab.invalid"]}, "registry-mirrorz", "don't match any configuration option: registry-mirrorz"),
    ({"exec-opts": ["native.cgroupdriver=system"]}, "native.cgroupdriver must be systemd or cgroupfs", None),
])
def test_what_dockerd_refuses_the_module_refuses_before_writing(dockerd, tmp_path, settings, module_says, dockerd_says):
    version, binary = dockerd
    path = tmp_path / "daemon.json"
    original = '{"debug": false}\n'
    path.write_text(original)
    request = params(path, settings=settings, exec_opts={})
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.run(request, Node(binary, tmp_path))
    assert module_says in err.value.msg
    assert path.read_text() == original
    if version != "20.10" and dockerd_says:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(ddc.merge(json.loads(original), settings, {}, [])))
        proc = validate_by_hand(binary, bad)
        assert proc.returncode != 0 and dockerd_says in proc.stderr, proc.stderr


def test_a_flags_singular_name_is_accepted_by_dockerd_and_warned_about(dockerd, tmp_path):
    version, binary = dockerd
    path = tmp_path / "daemon.json"
    result = ddc.run(params(path, settings={"registry-mirror": ["https://m.lab.invalid"]}, exec_opts={}), Node(binary, tmp_path))
    assert any("dockerd accepts it but ignores the value; the daemon.json key is registry-mirrors" in w for w in result["warnings"])
    if version != "20.10":
        assert validate_by_hand(binary, path).returncode == 0, "dockerd itself accepts the flag's name"


def test_the_old_dockerd_is_detected_and_its_flags_become_the_known_keys(dockerd, tmp_path):
    version, binary = dockerd
    node = Node(binary, tmp_path)
    rc, _out, err = node.run([str(binary), "--validate", "--config-file", str(tmp_path / "none.json")])
    if version == "20.10":
        assert rc != 0 and "unknown flag: --validate" in err
        rc, out, _err = node.run([str(binary), "--help"])
        keys = ddc.known_keys(out)
        assert {"exec-opts", "log-opts", "registry-mirrors", "insecure-registries", "hosts", "containerd", "live-restore"} <= keys
        assert "proxies" not in keys, "Docker 20.10 has no proxies key"
    else:
        assert "unknown flag" not in err
