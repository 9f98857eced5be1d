# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the containerd config.toml merge (no containerd needed: a scripted fake answers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomlkit
import tomllib
from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config as cc

FIXTURES = Path(__file__).resolve().parents[3] / "integration" / "fixtures" / "containerd"

V2_WITH_NVIDIA = '''\
# Managed by hand: keep this comment.
version = 2
root = "/var/lib/containerd"   # where images live

[plugins]
  # the CRI plugin
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
      # added by nvidia-ctk
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        privileged_without_host_devices = false
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false

[plugins."io.containerd.snapshotter.v1.zfs"]
  root_path = "/tank/containerd"   # unknown to us, must survive

[x-vendor.extension]
  answer = 42
'''

V3_MINIMAL = '''\
version = 3
# containerd 2.x
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.k8s.io/pause:3.10'
'''

ALL_OPTIONS = dict(
    sandbox_image="example.org/pause:9",
    systemd_cgroup=True,
    registry_config_path="/etc/containerd/certs.d",
    runtimes={
        "kata": {
            "runtime_type": "io.containerd.kata.v2",
            "pod_annotations": ["io.katacontainers.*"],
            "privileged_without_host_devices": True,
            "options": {"ConfigPath": "/etc/kata-containers/configuration.toml"},
        },
    },
    default_runtime="runc",
)


def data(text):
    return tomllib.loads(text)


# ----------------------------------------------------------------------------- a fake node


class FakeNode(cc.NodeOps):
    """Real files under tmp_path; containerd answers from a script.

    ``dump`` decides what ``config dump`` prints for a candidate; by default it echoes the
    candidate (what containerd does for keys it knows), which is enough to test orchestration.
    """

    def __init__(self, tmp_path, version="containerd github.com/containerd/containerd/v2 2.1.9+unknown",
                 default=None, dump=None, dump_rc=0, dump_stderr="", migrate=None, binary=True):
        self.tmp_path = Path(tmp_path)
        self.version = version
        self.default = default if default is not None else (FIXTURES / "v3-default-2.1.toml").read_text()
        self.dump = dump or (lambda candidate: candidate)
        self.dump_rc = dump_rc
        self.dump_stderr = dump_stderr
        self.migrate = migrate
        self.binary = binary
        self.calls = []
        self.installed = []
        self.counter = 0

    def read(self, path):
        if not os.path.exists(path):
            return False, None
        return True, Path(path).read_text()

    def run(self, argv):
        self.calls.append(list(argv))
        if not self.binary:
            return 127, "", "sh: 1: %s: not found" % argv[0]
        if argv[1:] == ["--version"]:
            return 0, self.version + "\n", ""
        if argv[1:] == ["config", "default"]:
            return 0, self.default, ""
        if argv[1] == "--config" and argv[3:] == ["config", "dump"]:
            return self.dump_rc, (self.dump(Path(argv[2]).read_text()) if self.dump_rc == 0 else ""), self.dump_stderr
        if argv[1] == "--config" and argv[3:] == ["config", "migrate"]:
            return 0, self.migrate(Path(argv[2]).read_text()), ""
        raise AssertionError("unexpected command %r" % argv)

    def write_temp(self, text):
        self.counter += 1
        path = self.tmp_path / ("candidate-%d.toml" % self.counter)
        path.write_text(text)
        return str(path)

    def install(self, temp_path, text, path, existed, backup):
        self.installed.append((temp_path, path, existed, backup))
        assert Path(temp_path).read_text() == text
        backup_file = None
        if existed and backup:
            backup_file = path + ".bak"
            Path(backup_file).write_bytes(Path(path).read_bytes())
        os.replace(temp_path, path)
        return backup_file


def write(tmp_path, text, name="config.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_task(path, node, check_mode=False, **params):
    params.setdefault("containerd_path", "/usr/bin/containerd")
    return cc.run(dict(path=str(path), **params), node, check_mode=check_mode)


# ----------------------------------------------------------------------------- parsing and versions


def test_invalid_toml_reports_line_and_column(tmp_path):
    path = write(tmp_path, 'version = 2\n[plugins\nfoo = 1\n')
    before = path.read_bytes()
    with pytest.raises(cc.ContainerdConfigError) as err:
        run_task(path, FakeNode(tmp_path), sandbox_image="x")
    assert "line 2" in err.value.msg and "column" in err.value.msg and str(path) in err.value.msg
    assert err.value.extra["line"] == 2
    assert path.read_bytes() == before


@pytest.mark.parametrize("text, expected", [
    ("", None),
    ("root = '/x'\n", None),
    ("version = 2\n", 2),
    ("version = 3\n", 3),
])
def test_detect_version(text, expected):
    assert cc.detect_version(tomlkit.parse(text)) == expected


def test_detect_version_rejects_non_integer():
    with pytest.raises(cc.ContainerdConfigError, match="must be an integer"):
        cc.detect_version(tomlkit.parse('version = "2"\n'))


@pytest.mark.parametrize("output, expected", [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (2, "1.6")),
    ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", (2, "1.7")),
    ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ", (3, "2.1")),
    ("containerd containerd.io v2.3.0 abcdef", (4, "2.3")),
    ("no version here", (None, None)),
])
def test_binary_config_version(output, expected):
    assert cc.binary_config_version(output) == expected


@pytest.mark.parametrize("version, sandbox, runtimes", [
    (1, ("plugins", "cri", "sandbox_image"), ("plugins", "cri", "containerd", "runtimes")),
    (2, ("plugins", "io.containerd.grpc.v1.cri", "sandbox_image"), ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")),
    (3, ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
     ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")),
    (4, ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
     ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")),
])
def test_schema_per_version(version, sandbox, runtimes):
    schema = cc.schema_for(version)
    assert schema.sandbox == sandbox
    assert schema.runtimes == runtimes


def test_unknown_version_is_an_error():
    with pytest.raises(cc.ContainerdConfigError, match="version 5 is not known"):
        cc.schema_for(5)


# ----------------------------------------------------------------------------- options per version


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_every_option_lands_at_the_versions_key(version):
    text = "" if version == 1 else "version = %d\n" % version
    doc = tomlkit.parse(text)
    changes, _warnings, _data = cc.apply_options(doc, dict(ALL_OPTIONS), version)
    got = data(tomlkit.dumps(doc))
    if version == 1:
        images = runtime = got["plugins"]["cri"]
        assert images["sandbox_image"] == "example.org/pause:9"
    elif version == 2:
        images = runtime = got["plugins"]["io.containerd.grpc.v1.cri"]
        assert images["sandbox_image"] == "example.org/pause:9"
    else:
        images = got["plugins"]["io.containerd.cri.v1.images"]
        runtime = got["plugins"]["io.containerd.cri.v1.runtime"]
        assert images["pinned_images"]["sandbox"] == "example.org/pause:9"
        assert "io.containerd.grpc.v1.cri" not in got["plugins"]
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    runtimes = runtime["containerd"]["runtimes"]
    assert runtime["containerd"]["default_runtime_name"] == "runc"
    assert runtimes["runc"] == {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}
    assert runtimes["kata"] == {
        "runtime_type": "io.containerd.kata.v2",
        "pod_annotations": ["io.katacontainers.*"],
        "privileged_without_host_devices": True,
        "options": {"ConfigPath": "/etc/kata-containers/configuration.toml"},
    }
    assert changes


def test_comments_order_and_third_party_runtime_survive_byte_for_byte():
    doc = tomlkit.parse(V2_WITH_NVIDIA)
    cc.apply_options(doc, {"sandbox_image": "example.org/pause:9", "systemd_cgroup": True}, 2)
    after = tomlkit.dumps(doc)
    expected = (V2_WITH_NVIDIA
                .replace('sandbox_image = "registry.k8s.io/pause:3.6"', 'sandbox_image = "example.org/pause:9"')
                .replace("SystemdCgroup = false", "SystemdCgroup = true"))
    # only the two values changed; every comment, indentation and unknown section is unchanged
    assert after == expected
    got = data(after)
    assert got["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]["options"] == {
        "BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    assert got["plugins"]["io.containerd.snapshotter.v1.zfs"] == {"root_path": "/tank/containerd"}
    assert got["x-vendor"]["extension"]["answer"] == 42


def test_systemd_cgroup_leaves_non_runc_runtimes_alone():
    doc = tomlkit.parse(V2_WITH_NVIDIA)
    cc.apply_options(doc, {"runtimes": {"kata": {"runtime_type": "io.containerd.kata.v2"}}, "systemd_cgroup": True}, 2)
    kata = data(tomlkit.dumps(doc))["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["kata"]
    assert kata == {"runtime_type": "io.containerd.kata.v2"}


def test_literal_string_style_is_kept_in_v3_files():
    doc = tomlkit.parse(V3_MINIMAL)
    cc.apply_options(doc, {"sandbox_image": "example.org/pause:9"}, 3)
    assert "  sandbox = 'example.org/pause:9'\n" in tomlkit.dumps(doc)
    assert "# containerd 2.x\n" in tomlkit.dumps(doc)


def test_runtime_options_are_merged_not_replaced():
    doc = tomlkit.parse(V2_WITH_NVIDIA)
    cc.apply_options(doc, {"runtimes": {"nvidia": {"options": {"SystemdCgroup": True}}}}, 2)
    nvidia = data(tomlkit.dumps(doc))["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]
    assert nvidia["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    assert nvidia["privileged_without_host_devices"] is False


def test_new_runtime_needs_a_runtime_type():
    with pytest.raises(cc.ContainerdConfigError, match="runtimes.kata does not exist.*runtime_type"):
        cc.apply_options(tomlkit.parse("version = 3\n"), {"runtimes": {"kata": {"pod_annotations": []}}}, 3)


def test_default_runtime_must_exist():
    with pytest.raises(cc.ContainerdConfigError, match="default_runtime 'kata' is not a runtime"):
        cc.apply_options(tomlkit.parse("version = 3\n"), {"default_runtime": "kata"}, 3)


@pytest.mark.parametrize("runtimes, message", [
    ({"kata": "io.containerd.kata.v2"}, "runtimes.kata must be a dictionary"),
    ({"kata": {"runtime_typo": "x"}}, "runtimes.kata.runtime_typo is not a known runtime key"),
    ({"kata": {"privileged_without_host_devices": "yes"}}, "must be a bool"),
    ({"kata": {"pod_annotations": [1]}}, "list of strings"),
])
def test_runtime_validation(runtimes, message):
    with pytest.raises(cc.ContainerdConfigError, match=message):
        cc.validate_params({"runtimes": runtimes})


def test_merge_deep_merges_and_replaces_lists():
    doc = tomlkit.parse(V2_WITH_NVIDIA)
    cc.apply_options(doc, {"merge": {
        "oom_score": -999,
        "plugins": {"io.containerd.grpc.v1.cri": {"cni": {"bin_dir": "/opt/cni/bin"}, "max_container_log_line_size": 32768}},
        "x-vendor": {"extension": {"list": ["a", "b"]}},
    }}, 2)
    got = data(tomlkit.dumps(doc))
    cri = got["plugins"]["io.containerd.grpc.v1.cri"]
    assert got["oom_score"] == -999
    assert cri["cni"] == {"bin_dir": "/opt/cni/bin"}
    assert cri["max_container_log_line_size"] == 32768
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.6"
    assert got["x-vendor"]["extension"] == {"answer": 42, "list": ["a", "b"]}


def test_merge_refuses_a_table_over_a_scalar():
    with pytest.raises(cc.ContainerdConfigError, match="root is a str"):
        cc.apply_options(tomlkit.parse(V2_WITH_NVIDIA), {"merge": {"root": {"x": 1}}}, 2)


# ----------------------------------------------------------------------------- disabled_plugins


@pytest.mark.parametrize("before, after", [
    ('disabled_plugins = ["cri"]', []),
    ('disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart"]),
    ("disabled_plugins = ['io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime']", []),
])
def test_enable_cri_removes_every_cri_id(before, after):
    doc = tomlkit.parse("version = 3\n" + before + "\n")
    changes, _warnings, _data = cc.apply_options(doc, {"enable_cri": True}, 3)
    assert data(tomlkit.dumps(doc))["disabled_plugins"] == after
    assert "disabled_plugins" in changes


def test_enable_cri_false_keeps_the_list():
    doc = tomlkit.parse('version = 2\ndisabled_plugins = ["cri"]\n')
    changes, _warnings, _data = cc.apply_options(doc, {"enable_cri": False}, 2)
    assert data(tomlkit.dumps(doc))["disabled_plugins"] == ["cri"]
    assert changes == []


@pytest.mark.parametrize("version, before, after", [
    (2, "", ["io.containerd.grpc.v1.cri"]),
    (2, 'disabled_plugins = ["cri", "io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart", "io.containerd.grpc.v1.cri"]),
    (3, 'disabled_plugins = ["io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart", "io.containerd.grpc.v1.cri"]),
    (1, "", ["cri"]),
])
def test_disable_cri_adds_the_plugin_id_of_the_files_version(version, before, after):
    header = "version = %d\n" % version if version > 1 else ""
    doc = tomlkit.parse(header + before + "\n")
    changes, _warnings, _data = cc.apply_options(doc, {"disable_cri": True, "enable_cri": True}, version)
    assert data(tomlkit.dumps(doc))["disabled_plugins"] == after
    assert "disabled_plugins" in changes


def test_disable_cri_twice_changes_nothing():
    doc = tomlkit.parse('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    changes, _warnings, _data = cc.apply_options(doc, {"disable_cri": True}, 2)
    assert changes == []


def test_verify_dump_with_disable_cri_wants_the_cri_plugin_disabled():
    enabled = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "p"\n'
    problems, effective = cc.verify_dump(enabled, {"disable_cri": True}, 2)
    assert problems == ["the CRI plugin is still enabled (disabled_plugins is [])"] and effective["cri_enabled"]
    problems, effective = cc.verify_dump('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', {"disable_cri": True}, 2)
    assert problems == [] and not effective["cri_enabled"]


def test_docker_default_file_gets_the_binary_version_and_cri_enabled(tmp_path):
    source = (FIXTURES / "docker-default.toml").read_text()
    path = write(tmp_path, source)
    result = run_task(path, FakeNode(tmp_path), sandbox_image="example.org/pause:9")
    after = path.read_text()
    got = data(after)
    assert result["config_version"] == 3 and got["version"] == 3
    assert got["disabled_plugins"] == []
    assert got["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    # the licence header and the commented-out settings are still there, in order
    for line in source.splitlines():
        if line.startswith("#"):
            assert line in after.splitlines()
    assert after.index("Copyright 2018-2022 Docker Inc.") < after.index("version = 3") < after.index('#root = "/var/lib/containerd"')
    assert any("no version key" in w for w in result["warnings"])


# ----------------------------------------------------------------------------- registry conflict


def test_mirrors_with_config_path_is_refused_with_the_fix(tmp_path):
    path = write(tmp_path, (FIXTURES / "v1-seed003.toml").read_text())
    before = path.read_bytes()
    with pytest.raises(cc.ContainerdConfigError) as err:
        run_task(path, FakeNode(tmp_path, version="containerd x 1.6.20"), registry_config_path="/etc/containerd/certs.d")
    msg = err.value.msg
    assert "plugins.cri.registry.mirrors (docker.io)" in msg
    assert "/etc/containerd/certs.d/<registry host>/hosts.toml" in msg
    assert "`mirrors` cannot be set when `config_path` is provided" in msg
    assert path.read_bytes() == before


def test_tls_configs_with_config_path_conflict():
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n'
            '[plugins."io.containerd.grpc.v1.cri".registry.configs."reg.example".tls]\nca_file = "/ca.crt"\n')
    assert "configs.<host>.tls (reg.example)" in cc.registry_conflicts(data(text), 2)


def test_no_conflict_without_config_path():
    assert cc.registry_conflicts(data((FIXTURES / "v1-seed003.toml").read_text()), 1) is None


# ----------------------------------------------------------------------------- run(): orchestration


def test_apply_then_reapply_is_idempotent_and_keeps_mtime(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    node = FakeNode(tmp_path, version="containerd x 1.7.24")
    first = run_task(path, node, **ALL_OPTIONS)
    assert first["changed"] and first["restart_required"] and first["validated"]
    os.utime(path, (1_000_000, 1_000_000))
    text = path.read_bytes()
    second = run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), **ALL_OPTIONS)
    assert not second["changed"] and not second["restart_required"]
    assert second["changed_keys"] == []
    assert path.read_bytes() == text
    assert os.stat(path).st_mtime == 1_000_000
    assert second["values"]["sandbox_image"] == "example.org/pause:9"


def test_check_mode_validates_but_does_not_write(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    node = FakeNode(tmp_path, version="containerd x 1.7.24")
    result = run_task(path, node, check_mode=True, sandbox_image="example.org/pause:9")
    assert result["changed"] and result["validated"]
    assert path.read_text() == V2_WITH_NVIDIA
    assert node.installed == []
    assert any(call[3:] == ["config", "dump"] for call in node.calls)
    assert 'sandbox_image = "example.org/pause:9"' in result["diff"]["after"]
    assert result["diff"]["before"] == V2_WITH_NVIDIA


def test_missing_file_starts_from_config_default(tmp_path):
    path = tmp_path / "config.toml"
    node = FakeNode(tmp_path)
    result = run_task(path, node, sandbox_image="example.org/pause:9", systemd_cgroup=True)
    got = data(path.read_text())
    default = data((FIXTURES / "v3-default-2.1.toml").read_text())
    assert result["changed"] and result["config_version"] == 3
    assert ["/usr/bin/containerd", "config", "default"] in node.calls
    assert got["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    runc = got["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True
    # everything else is containerd's default
    assert got["plugins"]["io.containerd.gc.v1.scheduler"] == default["plugins"]["io.containerd.gc.v1.scheduler"]
    assert node.installed[0][2] is False  # created, no backup


def test_backup_is_returned(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    result = run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), sandbox_image="example.org/pause:9", backup=True)
    assert Path(result["backup_file"]).read_text() == V2_WITH_NVIDIA


def test_dump_verification_fails_when_a_value_is_not_effective(tmp_path):
    """containerd 2.1 ignores the CRI keys of a version 1 file with only a warning: never report success."""
    path = write(tmp_path, (FIXTURES / "v1-seed003.toml").read_text())
    before = path.read_bytes()
    warning = ('time="2026-11-23T14:05:49Z" level=warning msg="Ignoring unknown key in TOML for plugin" '
               'error="strict mode: fields in the document are missing in the target struct" key=sandbox_image plugin=io.containerd.grpc.v1.cri')
    node = FakeNode(tmp_path, dump=lambda candidate: (FIXTURES / "v3-default-2.1.toml").read_text(), dump_stderr=warning + "\n")
    with pytest.raises(cc.ContainerdConfigError) as err:
        run_task(path, node, sandbox_image="example.org/pause:9")
    msg = err.value.msg
    assert "sandbox image is 'registry.k8s.io/pause:3.10'" in msg and "expected 'example.org/pause:9'" in msg
    assert "set migrate: true" in msg
    assert "key=sandbox_image" in msg  # containerd's own words are quoted
    assert path.read_bytes() == before
    assert node.installed == []


def test_dump_verification_fails_when_cri_stays_disabled(tmp_path):
    path = write(tmp_path, 'version = 2\ndisabled_plugins = ["cri"]\n')
    node = FakeNode(tmp_path, version="containerd x 1.6.20")
    with pytest.raises(cc.ContainerdConfigError, match="the CRI plugin is disabled"):
        run_task(path, node, enable_cri=False, sandbox_image="example.org/pause:9")


def test_containerd_rejecting_the_candidate_is_quoted_and_nothing_is_written(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    before = path.read_bytes()
    stderr = 'containerd: failed to load TOML from /tmp/c.toml: invalid disabled plugin URI "cri" expect io.containerd.x.vx\n'
    node = FakeNode(tmp_path, dump_rc=1, dump_stderr=stderr)
    with pytest.raises(cc.ContainerdConfigError) as err:
        run_task(path, node, sandbox_image="example.org/pause:9")
    assert "invalid disabled plugin URI" in err.value.msg and "rc=1" in err.value.msg
    assert path.read_bytes() == before and node.installed == []


def test_file_newer_than_the_binary_is_refused(tmp_path):
    path = write(tmp_path, V3_MINIMAL)
    with pytest.raises(cc.ContainerdConfigError, match="version 3 config but containerd 1.7 reads versions up to 2"):
        run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), sandbox_image="x")


def test_validate_true_without_binary_fails(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    with pytest.raises(cc.ContainerdConfigError, match="validate is true but the containerd binary"):
        run_task(path, FakeNode(tmp_path, binary=False), validate=True, sandbox_image="x")


def test_without_binary_the_merge_is_not_validated_and_says_so(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    result = run_task(path, FakeNode(tmp_path, binary=False), sandbox_image="example.org/pause:9")
    assert result["changed"] and not result["validated"]
    assert result["values"]["sandbox_image"] == "example.org/pause:9"
    assert any("not validated" in w for w in result["warnings"])


def test_validate_false_skips_the_dump(tmp_path):
    path = write(tmp_path, V2_WITH_NVIDIA)
    node = FakeNode(tmp_path)
    run_task(path, node, validate=False, sandbox_image="example.org/pause:9")
    assert not any("dump" in call for call in node.calls)


# ----------------------------------------------------------------------------- migration


def test_v1_to_v2_migration_renames_plugins_and_keeps_comments():
    doc = tomlkit.parse((FIXTURES / "v1-seed003.toml").read_text())
    cc.migrate_v1_to_v2(doc)
    text = tomlkit.dumps(doc)
    got = data(text)
    assert got["version"] == 2
    assert set(got["plugins"]) == {
        "io.containerd.monitor.v1.cgroups", "io.containerd.grpc.v1.cri", "io.containerd.service.v1.diff-service",
        "io.containerd.runtime.v1.linux", "io.containerd.gc.v1.scheduler"}
    assert got["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "k8s.gcr.io/pause-amd64:3.1"
    assert "## default_runtime为默认runtime" in text
    assert '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]' in text


def test_v1_migration_refuses_duplicate_sections():
    doc = tomlkit.parse('[plugins.cri]\na = 1\n[plugins."io.containerd.grpc.v1.cri"]\nb = 2\n')
    with pytest.raises(cc.ContainerdConfigError, match="both plugins.cri"):
        cc.migrate_v1_to_v2(doc)


def test_migrate_runs_containerd_config_migrate_after_the_v1_rename(tmp_path):
    path = write(tmp_path, (FIXTURES / "v1-seed003.toml").read_text())
    seen = []

    def migrate(candidate):
        seen.append(data(candidate))
        return V3_MINIMAL

    node = FakeNode(tmp_path, migrate=migrate)
    result = run_task(path, node, migrate=True, backup=True, sandbox_image="example.org/pause:9")
    assert seen[0]["version"] == 2 and "io.containerd.grpc.v1.cri" in seen[0]["plugins"]
    assert result["migrated_from"] == 1 and result["config_version"] == 3
    assert data(path.read_text())["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    assert Path(result["backup_file"]).read_text() == (FIXTURES / "v1-seed003.toml").read_text()


# ----------------------------------------------------------------------------- dump verification


def test_verify_dump_reports_each_wrong_value():
    dump = (FIXTURES / "v3-default-2.1.toml").read_text()
    problems, effective = cc.verify_dump(dump, dict(ALL_OPTIONS), 3)
    text = " | ".join(problems)
    assert "sandbox image is 'registry.k8s.io/pause:3.10'" in text
    assert "registry config_path is ''" in text
    assert "runtime 'kata' is missing" in text
    assert "runtime 'runc' has SystemdCgroup = False, expected True" in text
    assert effective["cri_enabled"] is True and effective["default_runtime"] == "runc"


def test_verify_dump_accepts_a_matching_dump():
    doc = tomlkit.parse((FIXTURES / "v3-default-2.1.toml").read_text())
    cc.apply_options(doc, dict(ALL_OPTIONS), 3)
    problems, effective = cc.verify_dump(tomlkit.dumps(doc), dict(ALL_OPTIONS), 3)
    assert problems == []
    assert effective["runtimes"] == {"runc": "io.containerd.runc.v2", "kata": "io.containerd.kata.v2"}
    assert effective["systemd_cgroup"] is True


def test_tomlkit_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(cc, "HAS_TOMLKIT", False)
    monkeypatch.setattr(cc, "TOMLKIT_IMPORT_ERROR", ImportError("No module named 'tomlkit'"))
    with pytest.raises(cc.ContainerdConfigError, match="tomlkit is required"):
        cc.run({"path": "/nonexistent"}, FakeNode("/tmp"))


# ----------------------------------------------------------------------------- partial parsing (speed) is exact


NVIDIA_APPENDED = (FIXTURES / "v2-default-1.7.toml").read_text() + '''
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false
'''


@pytest.mark.parametrize("text, version", [
    (NVIDIA_APPENDED, 2),
    ((FIXTURES / "v3-default-2.1.toml").read_text(), 3),
    (V2_WITH_NVIDIA, 2),
])
def test_partial_edit_gives_the_full_edit_and_keeps_other_sections_verbatim(text, version):
    params = dict(ALL_OPTIONS, merge={"oom_score": -999})
    full_doc = tomlkit.parse(text)
    _changes, _warnings, full_data = cc.apply_options(full_doc, params, version)
    data = data_before = cc.loads(text)
    dry = cc.Editor(None, cc.loads(text))
    cc._apply(dry, params, version)
    result = cc.partial_apply(text, params, version, data, dry.touched)
    assert result is not None
    _changes, _warnings, partial_data, new_text = result
    assert partial_data == full_data == tomllib.loads(new_text)
    assert data == data_before  # the caller's data is not modified
    _head, sections = cc._split_sections(text)
    for path, chunk in sections:
        if path not in dry.touched:
            assert chunk in new_text


def test_header_like_line_in_a_value_falls_back_to_the_full_parse(tmp_path):
    text = 'version = 2\n# matrix\nx = [\n  [1, 2],\n]\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "a"  # keep\n'
    assert cc._split_sections(text) is None
    path = write(tmp_path, text)
    run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), sandbox_image="b")
    assert path.read_text() == text.replace('sandbox_image = "a"', 'sandbox_image = "b"')


def test_unchanged_file_never_needs_the_comment_preserving_parser(tmp_path, monkeypatch):
    path = write(tmp_path, V2_WITH_NVIDIA)
    run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), **ALL_OPTIONS)

    def no_parse(*args, **kwargs):
        raise AssertionError("tomlkit.parse called for an unchanged file")

    monkeypatch.setattr(cc.tomlkit, "parse", no_parse)
    result = run_task(path, FakeNode(tmp_path, version="containerd x 1.7.24"), **ALL_OPTIONS)
    assert result["changed"] is False
