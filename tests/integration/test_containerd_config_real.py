# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd_config against the real containerd 1.6 (bookworm), 1.7 (trixie) and 2.1 (sid).

The controller's run() drives the real node-side helper module in-process (tests/containerd_config_harness.py).
Each merge result is judged by the real binary, independently of the module's own check:
``containerd --config FILE config dump`` must show the CRI plugin enabled and every requested
value effective, or the run must fail with a clear message where the combination cannot work.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import debfetch
import pytest
import tomllib
from containerd_config_harness import run_local
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError

pytestmark = pytest.mark.real_binary

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "containerd"
SUITES = {"bookworm": "1.6", "trixie": "1.7", "sid": "2.1"}
CRI_IDS = {"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"}

REQUEST = dict(
    sandbox_image="registry.example.internal:5000/pause:3.10-kf",
    systemd_cgroup=True,
    registry_config_path="/etc/containerd/certs.d",
    runtimes={
        "kata": {
            "runtime_type": "io.containerd.kata.v2",
            "pod_annotations": ["io.katacontainers.*"],
            "privileged_without_host_devices": True,
        },
        "nvidia": {
            "runtime_type": "io.containerd.runc.v2",
            "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"},
        },
    },
)

INPUTS = {
    "docker-default": (FIXTURES / "docker-default.toml").read_text(),
    "v1-seed003": (FIXTURES / "v1-seed003.toml").read_text(),
    "v2-default": (FIXTURES / "v2-default-1.7.toml").read_text(),
    "v3-default": (FIXTURES / "v3-default-2.1.toml").read_text(),
    "empty": "",
}


@pytest.fixture(scope="module", params=sorted(SUITES))
def containerd(request):
    suite = request.param
    try:
        root = debfetch.fetch("containerd", suite)
    except debfetch.DebFetchError as exc:
        pytest.skip("containerd of Debian %s cannot be fetched here: %s" % (suite, exc))
    binary = Path(root) / "usr" / "bin" / "containerd"
    assert binary.exists(), "the containerd package of %s has no usr/bin/containerd" % suite
    return SUITES[suite], str(binary)


def dump(binary, path):
    """The effective config according to containerd itself (independent of the module's schema)."""
    env = dict(os.environ, LANG="C", LC_ALL="C")
    proc = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True, text=True, env=env, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return tomllib.loads(proc.stdout), proc.stderr


def effective(binary, path):
    data, stderr = dump(binary, path)
    plugins = data["plugins"]
    if data["version"] == 2:
        images = runtime = plugins["io.containerd.grpc.v1.cri"]
        sandbox = images["sandbox_image"]
    else:
        images, runtime = plugins["io.containerd.cri.v1.images"], plugins["io.containerd.cri.v1.runtime"]
        sandbox = images["pinned_images"]["sandbox"]
    return {
        "disabled_cri": sorted(set(data.get("disabled_plugins", [])) & CRI_IDS),
        "sandbox": sandbox,
        "config_path": images["registry"]["config_path"],
        "default_runtime": runtime["containerd"]["default_runtime_name"],
        "runtimes": runtime["containerd"]["runtimes"],
        "mirrors": images["registry"].get("mirrors", {}),
        "stderr": stderr,
    }


def assert_request_effective(binary, path, request):
    eff = effective(binary, path)
    assert eff["disabled_cri"] == []
    assert eff["sandbox"] == request["sandbox_image"]
    if "registry_config_path" in request:
        assert eff["config_path"] == request["registry_config_path"]
    runtimes = eff["runtimes"]
    assert runtimes[eff["default_runtime"]]["options"]["SystemdCgroup"] is True
    assert runtimes["kata"]["runtime_type"] == "io.containerd.kata.v2"
    assert runtimes["kata"]["pod_annotations"] == ["io.katacontainers.*"]
    assert runtimes["kata"]["privileged_without_host_devices"] is True
    assert runtimes["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is True
    # containerd may ignore unrelated stale keys of an old default file, never one of ours
    ours = ("sandbox_image", "config_path", "runtime_type", "pod_annotations", "privileged_without_host_devices",
            "SystemdCgroup", "BinaryName", "kata", "nvidia")
    for key in re.findall(r'key=("[^"]*"|\S+)', eff["stderr"]):
        assert key.strip('"').split()[-1] not in ours, "containerd ignored %s:\n%s" % (key, eff["stderr"])
    return eff


def apply(tmp_path, binary, text, **params):
    """One task with the real node-side helper module (in-process) and the real binary."""
    path = tmp_path / "config.toml"
    if text is not None:
        path.write_text(text)
    result, _node = run_local(path=str(path), containerd_path=binary, **params)
    return path, result


# Where a combination cannot work, the run must fail with this message and leave the file alone.
IMPOSSIBLE = {
    ("1.6", "v1-seed003"): "`mirrors` cannot be set when `config_path` is provided",
    ("1.7", "v1-seed003"): "`mirrors` cannot be set when `config_path` is provided",
    ("2.1", "v1-seed003"): "`mirrors` cannot be set when `config_path` is provided",
    ("1.6", "v3-default"): "version 3 config but containerd 1.6 reads versions up to 2",
    ("1.7", "v3-default"): "version 3 config but containerd 1.7 reads versions up to 2",
}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_matrix(tmp_path, containerd, name):
    release, binary = containerd
    path, text = tmp_path / "config.toml", INPUTS[name]
    expected_error = IMPOSSIBLE.get((release, name))
    if expected_error:
        path.write_text(text)
        with pytest.raises(ContainerdConfigError) as err:
            apply(tmp_path, binary, text, **REQUEST)
        assert expected_error in err.value.msg
        assert path.read_text() == text
        return
    _path, first = apply(tmp_path, binary, text, **REQUEST)
    assert first["changed"] and first["validated"] and first["values"]["cri_enabled"]
    assert first["values"]["sandbox_image"] == REQUEST["sandbox_image"]
    assert_request_effective(binary, path, REQUEST)
    mtime = os.stat(path).st_mtime_ns
    _path, second = apply(tmp_path, binary, None, **REQUEST)
    assert second["changed"] is False
    assert os.stat(path).st_mtime_ns == mtime


SEED_REQUEST = {k: v for k, v in REQUEST.items() if k != "registry_config_path"}


def test_v1_file_without_migrate(tmp_path, containerd):
    """containerd 1.x reads version 1; 2.x only warns and ignores its CRI keys: that must fail."""
    release, binary = containerd
    text = INPUTS["v1-seed003"]
    if release.startswith("1."):
        path, result = apply(tmp_path, binary, text, **SEED_REQUEST)
        assert result["config_version"] == 1 and result["validated"]
        assert_request_effective(binary, path, SEED_REQUEST)
        assert any("deprecated default_runtime" in w for w in result["warnings"])
        return
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ContainerdConfigError) as err:
        apply(tmp_path, binary, text, **SEED_REQUEST)
    msg = err.value.msg
    assert "expected 'registry.example.internal:5000/pause:3.10-kf'" in msg
    assert "set migrate: true" in msg
    assert "Ignoring unknown key in TOML" in msg and "key=sandbox_image" in msg
    assert path.read_text() == text


def test_v1_file_with_migrate(tmp_path, containerd):
    release, binary = containerd
    path, result = apply(tmp_path, binary, INPUTS["v1-seed003"], migrate=True, backup=True, **SEED_REQUEST)
    assert result["migrated_from"] == 1
    assert result["config_version"] == (3 if release == "2.1" else 2)
    eff = assert_request_effective(binary, path, SEED_REQUEST)
    # the file's own settings survive the migration (the seed's docker.io mirror)
    assert eff["mirrors"]["docker.io"]["endpoint"] == ["https://9c56nwew.mirror.aliyuncs.com", "https://registry-1.docker.io"]
    assert Path(result["backup_file"]).read_text() == INPUTS["v1-seed003"]
    _path, again = apply(tmp_path, binary, None, migrate=True, **SEED_REQUEST)
    assert again["changed"] is False


def test_v2_file_with_migrate(tmp_path, containerd):
    """containerd 2.x: migrate converts a version 2 file to 3; on 1.x version 2 is current and nothing is migrated."""
    release, binary = containerd
    path, result = apply(tmp_path, binary, INPUTS["v2-default"], migrate=True, **REQUEST)
    if release == "2.1":
        assert result["migrated_from"] == 2 and result["config_version"] == 3
        assert tomllib.loads(path.read_text())["version"] == 3
    else:
        assert result["migrated_from"] is None and result["config_version"] == 2
        assert path.read_text().startswith(INPUTS["v2-default"].splitlines()[0])
    assert_request_effective(binary, path, REQUEST)


def test_short_cri_name_in_a_v2_file_is_refused_by_containerd(tmp_path, containerd):
    """Every containerd here refuses disabled_plugins = ["cri"] in a version 2 file ("invalid disabled plugin URI")."""
    _release, binary = containerd
    text = 'version = 2\ndisabled_plugins = ["cri"]\n'
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ContainerdConfigError) as err:
        apply(tmp_path, binary, text, enable_cri=False, sandbox_image="registry.example.internal:5000/pause:3.10-kf")
    assert "containerd rejected the merged" in err.value.msg
    assert 'invalid disabled plugin URI "cri"' in err.value.msg
    assert path.read_text() == text
    _path, result = apply(tmp_path, binary, text, sandbox_image="registry.example.internal:5000/pause:3.10-kf")
    assert result["changed"] and effective(binary, path)["disabled_cri"] == []


def test_cri_left_disabled_is_a_failure(tmp_path, containerd):
    release, binary = containerd
    version = 3 if release == "2.1" else 2
    text = 'version = %d\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' % version
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ContainerdConfigError) as err:
        apply(tmp_path, binary, text, enable_cri=False, sandbox_image="registry.example.internal:5000/pause:3.10-kf")
    assert "the CRI plugin is disabled (disabled_plugins contains io.containerd.grpc.v1.cri)" in err.value.msg
    assert path.read_text() == text


@pytest.mark.parametrize("name", ["docker-default", "empty"])
def test_disable_cri_for_a_docker_only_containerd(tmp_path, containerd, name):
    """disable_cri: the real binary's dump shows the CRI plugin disabled (also where the file had the short "cri",
    which containerd refuses in version 2+), and the second run changes nothing."""
    release, binary = containerd
    _path, first = apply(tmp_path, binary, INPUTS[name], disable_cri=True)
    path = tmp_path / "config.toml"
    data, _stderr = dump(binary, path)
    assert first["validated"] and first["values"]["cri_enabled"] is False
    assert "io.containerd.grpc.v1.cri" in data["disabled_plugins"] and "cri" not in data["disabled_plugins"], release
    _path, second = apply(tmp_path, binary, None, disable_cri=True)
    assert second["changed"] is False
