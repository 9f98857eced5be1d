# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of containerd_config on plain data: input checks, the merge plan per version, checks, migration."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import tomllib
from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config as cc
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import (
    ContainerdConfigError,
    binary_config_version,
    schema_for,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_toml import apply_edits
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

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


def merged(text, params, version):
    """(new text, plan, warnings) of applying ``params`` to ``text``."""
    plan, warnings = cc.plan_options(tomllib.loads(text), cc.Request(params), version)
    return apply_edits(text, plan.edits, plan.data), plan, warnings


# ----------------------------------------------------------------------------- input


@pytest.mark.parametrize("params, option, problem", [
    ({"path": "etc/containerd/config.toml"}, "path", "must be an absolute path"),
    ({"path": "/etc/../tmp/x.toml"}, "path", "'..'"),
    ({"path": ["/etc/x"]}, "path", "must be a string, got a list"),
    ({"sandbox_image": ["a", "b"]}, "sandbox_image", "must be a string, got a list"),
    ({"sandbox_image": {"a": 1}}, "sandbox_image", "must be a string, got a dict"),
    ({"sandbox_image": ""}, "sandbox_image", "must not be empty"),
    ({"registry_config_path": "certs.d"}, "registry_config_path", "must be an absolute path"),
    ({"default_runtime": 3}, "default_runtime", "must be a string, got an integer"),
    ({"containerd_path": "-x"}, "containerd_path", "must not start with '-'"),
    ({"containerd_path": "bin/containerd"}, "containerd_path", "must be an absolute path"),
    ({"systemd_cgroup": "yes"}, "systemd_cgroup", "must be true or false"),
    ({"runtimes": {"kata": "io.containerd.kata.v2"}}, "runtimes.kata", "must be a dict of runtime keys"),
    ({"runtimes": {"kata": {"runtime_typo": "x"}}}, "runtimes.kata.runtime_typo", "is not a known runtime key"),
    ({"runtimes": {"kata": {"privileged_without_host_devices": "yes"}}}, "runtimes.kata.privileged_without_host_devices", "must be true or false"),
    ({"runtimes": {"kata": {"pod_annotations": [1]}}}, "runtimes.kata.pod_annotations[0]", "must be a string"),
    ({"runtimes": {"kata": {"cni_max_conf_num": True}}}, "runtimes.kata.cni_max_conf_num", "must be an integer, got a bool"),
    ({"merge": ["a"]}, "merge", "must be a dict, got a list"),
    ({"merge": {"plugins": {"x": None}}}, "merge.plugins.x", "is null, which TOML cannot hold"),
    ({"merge": {"a": {"b": [1, None]}}}, "merge.a.b[1]", "is null"),
    ({"merge": {"a": {1: "x"}}}, "merge.a key 1", "must be a string, got an integer"),
    ({"merge": {"a": b"x"}}, "merge.a", "got bytes"),
    ({"merge": {"a": 2 ** 64}}, "merge.a", "must be at most"),
    ({"merge": {"a": "line\nbreak"}}, "merge.a", "control character"),
    ({"secret_keys": "apikey"}, "secret_keys", "must be a list"),
])
def test_bad_input_names_the_option(params, option, problem):
    with pytest.raises(InputError) as err:
        cc.Request(params)
    assert err.value.option == option and problem in err.value.problem


def test_good_input_keeps_types():
    request = cc.Request({"merge": {"a": {"n": 1, "f": 0.5, "b": False, "l": ["x", 2], "d": datetime.date(2026, 1, 2)}},
                          "registry_config_path": "/etc/containerd/certs.d:/etc/docker/certs.d"})
    assert request.merge == {"a": {"n": 1, "f": 0.5, "b": False, "l": ["x", 2], "d": datetime.date(2026, 1, 2)}}
    assert request.path == "/etc/containerd/config.toml" and request.containerd_path == "containerd"


def test_secrets_of_the_request_are_collected():
    request = cc.Request({"merge": {"plugins": {"x": {"registry": {"configs": {"r": {"auth": {"username": "u", "password": "p4ss"}}}}}},
                                    "other": {"apikey": "k3y"}}, "secret_keys": ["APIKEY"]})
    assert sorted(request.secrets) == ["k3y", "p4ss", "u"]  # everything under auth is a credential
    assert request.is_secret("ApiKey") and request.is_secret("identitytoken") and not request.is_secret("username")


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize("data, expected", [({}, None), ({"root": "/x"}, None), ({"version": 2}, 2), ({"version": 3}, 3)])
def test_detect_version(data, expected):
    assert cc.detect_version(data) == expected


def test_detect_version_rejects_non_integer():
    with pytest.raises(ContainerdConfigError, match="must be an integer, found a string"):
        cc.detect_version({"version": "2"})


@pytest.mark.parametrize("output, expected", [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (2, "1.6")),
    ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", (2, "1.7")),
    ("containerd github.com/containerd/containerd/v2 2.1.9+unknown ", (3, "2.1")),
    ("containerd containerd.io v2.3.0 abcdef", (4, "2.3")),
    ("no version here", (None, None)),
])
def test_binary_config_version(output, expected):
    assert binary_config_version(output) == expected


@pytest.mark.parametrize("version, sandbox, runtimes", [
    (1, ("plugins", "cri", "sandbox_image"), ("plugins", "cri", "containerd", "runtimes")),
    (2, ("plugins", "io.containerd.grpc.v1.cri", "sandbox_image"), ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")),
    (3, ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
     ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")),
    (4, ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
     ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")),
])
def test_schema_per_version(version, sandbox, runtimes):
    schema = schema_for(version)
    assert schema.sandbox == sandbox and schema.runtimes == runtimes


def test_unknown_version_is_an_error():
    with pytest.raises(ContainerdConfigError, match="version 5 is not known"):
        schema_for(5)


# ----------------------------------------------------------------------------- options per version


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_every_option_lands_at_the_versions_key(version):
    text = "" if version == 1 else "version = %d\n" % version
    after, plan, _warnings = merged(text, dict(ALL_OPTIONS), version)
    got = tomllib.loads(after)
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
    assert plan.changed_keys and got == plan.data


def test_comments_order_and_third_party_runtime_survive_byte_for_byte():
    after, _plan, _warnings = merged(V2_WITH_NVIDIA, {"sandbox_image": "example.org/pause:9", "systemd_cgroup": True}, 2)
    expected = (V2_WITH_NVIDIA
                .replace('sandbox_image = "registry.k8s.io/pause:3.6"', 'sandbox_image = "example.org/pause:9"')
                .replace("SystemdCgroup = false", "SystemdCgroup = true"))
    # only the two values changed; every comment, indentation and unknown section is unchanged
    assert after == expected
    got = tomllib.loads(after)
    assert got["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]["options"] == {
        "BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    assert got["plugins"]["io.containerd.snapshotter.v1.zfs"] == {"root_path": "/tank/containerd"}
    assert got["x-vendor"]["extension"]["answer"] == 42


def test_systemd_cgroup_leaves_non_runc_runtimes_alone():
    after, _plan, _warnings = merged(V2_WITH_NVIDIA, {"runtimes": {"kata": {"runtime_type": "io.containerd.kata.v2"}}, "systemd_cgroup": True}, 2)
    assert tomllib.loads(after)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["kata"] == {"runtime_type": "io.containerd.kata.v2"}


def test_literal_string_style_is_kept_in_v3_files():
    after, _plan, _warnings = merged(V3_MINIMAL, {"sandbox_image": "example.org/pause:9"}, 3)
    assert "  sandbox = 'example.org/pause:9'\n" in after and "# containerd 2.x\n" in after


def test_runtime_options_are_merged_not_replaced():
    after, _plan, _warnings = merged(V2_WITH_NVIDIA, {"runtimes": {"nvidia": {"options": {"SystemdCgroup": True}}}}, 2)
    nvidia = tomllib.loads(after)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]
    assert nvidia["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}
    assert nvidia["privileged_without_host_devices"] is False


def test_new_runtime_needs_a_runtime_type():
    with pytest.raises(ContainerdConfigError, match=r"runtimes.kata: does not exist.*runtime_type"):
        merged("version = 3\n", {"runtimes": {"kata": {"pod_annotations": []}}}, 3)


def test_default_runtime_must_exist():
    with pytest.raises(ContainerdConfigError, match="default_runtime: 'kata' is not a runtime"):
        merged("version = 3\n", {"default_runtime": "kata"}, 3)


def test_merge_deep_merges_and_replaces_lists():
    after, _plan, _warnings = merged(V2_WITH_NVIDIA, {"merge": {
        "oom_score": -999,
        "plugins": {"io.containerd.grpc.v1.cri": {"cni": {"bin_dir": "/opt/cni/bin"}, "max_container_log_line_size": 32768}},
        "x-vendor": {"extension": {"list": ["a", "b"]}, "empty": {}},
    }}, 2)
    got = tomllib.loads(after)
    cri = got["plugins"]["io.containerd.grpc.v1.cri"]
    assert got["oom_score"] == -999
    assert cri["cni"] == {"bin_dir": "/opt/cni/bin"}
    assert cri["max_container_log_line_size"] == 32768
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.6"
    assert got["x-vendor"]["extension"] == {"answer": 42, "list": ["a", "b"]}
    assert got["x-vendor"]["empty"] == {}


def test_merge_refuses_a_table_over_a_scalar_naming_the_key():
    with pytest.raises(ContainerdConfigError) as err:
        merged(V2_WITH_NVIDIA, {"merge": {"root": {"x": 1}}}, 2)
    assert err.value.msg.startswith("merge.root: is a string in the file") and err.value.extra["option"] == "merge.root"


def test_a_value_equal_in_data_but_not_in_type_is_rewritten():
    _after, plan, _warnings = merged("version = 2\nx = 1\n", {"merge": {"x": True}}, 2)
    assert plan.changed_keys == ["x"] and plan.data["x"] is True


def test_a_value_over_a_table_is_refused_naming_the_option():
    with pytest.raises(ContainerdConfigError) as err:
        merged(V2_WITH_NVIDIA, {"merge": {"plugins": {"io.containerd.grpc.v1.cri": {"containerd": "x"}}}}, 2)
    assert "cannot set plugins.\"io.containerd.grpc.v1.cri\".containerd: it is a table in the file" in err.value.msg
    assert err.value.extra["option"] == 'merge.plugins."io.containerd.grpc.v1.cri".containerd'


def test_keys_under_a_value_are_refused_naming_the_option():
    with pytest.raises(ContainerdConfigError) as err:
        merged("version = 2\nplugins = 3\n", {"sandbox_image": "x"}, 2)
    assert err.value.msg.startswith("sandbox_image: cannot set keys under plugins: it is an integer in the file")


def test_the_plan_leaves_the_callers_data_alone_and_records_each_key_once():
    data = tomllib.loads(V2_WITH_NVIDIA)
    before = tomllib.loads(V2_WITH_NVIDIA)
    plan, _warnings = cc.plan_options(data, cc.Request({"systemd_cgroup": True, "merge": {
        "plugins": {"io.containerd.grpc.v1.cri": {"containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": True}}}}}}}}), 2)
    assert data == before
    key = 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup'
    assert plan.changed_keys.count(key) == 1 and len(plan.edits) == 2  # runc by merge, nvidia by systemd_cgroup


def test_systemd_cgroup_creates_the_default_runtime_the_file_names():
    text = 'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd]\n  default_runtime_name = "crun"\n'
    after, _plan, _warnings = merged(text, {"systemd_cgroup": True}, 3)
    runtimes = tomllib.loads(after)["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]
    assert runtimes == {"crun": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}}


def test_runc_may_be_the_default_runtime_before_it_exists():
    after, _plan, _warnings = merged("version = 3\n", {"default_runtime": "runc"}, 3)
    assert tomllib.loads(after)["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["default_runtime_name"] == "runc"


def test_legacy_default_runtime_table_is_warned_about():
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.default_runtime]\n'
            '  runtime_type = "io.containerd.runtime.v1.linux"\n')
    _after, _plan, warnings = merged(text, {"sandbox_image": "x.org/p:1"}, 2)
    assert warnings == [
        'plugins."io.containerd.grpc.v1.cri".containerd.default_runtime sets the deprecated default_runtime (runtime_type '
        "io.containerd.runtime.v1.linux): containerd 1.x uses it instead of default_runtime_name, and containerd 2.x drops it. "
        "Remove that table to make the runtimes take effect"]
    _after, _plan, warnings = merged(text.replace("version = 2", "version = 3"), {}, 3)
    assert warnings == []  # not a key of version 3


def test_legacy_systemd_cgroup_switch_is_left_alone_with_a_warning():
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  systemd_cgroup = true\n'
    after, _plan, warnings = merged(text, {"systemd_cgroup": False}, 2)
    cri = tomllib.loads(after)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["systemd_cgroup"] is True and cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert len(warnings) == 1 and "legacy switch of the io.containerd.runtime.v1.linux shim" in warnings[0]
    _after, _plan, warnings = merged(text, {"systemd_cgroup": True}, 2)
    assert warnings == []


# ----------------------------------------------------------------------------- disabled_plugins


@pytest.mark.parametrize("before, after", [
    ('disabled_plugins = ["cri"]', []),
    ('disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart"]),
    ("disabled_plugins = ['io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime']", []),
])
def test_enable_cri_removes_every_cri_id(before, after):
    text, plan, _warnings = merged("version = 3\n" + before + "\n", {"enable_cri": True}, 3)
    assert tomllib.loads(text)["disabled_plugins"] == after and "disabled_plugins" in plan.changed_keys


def test_enable_cri_refuses_a_disabled_plugins_that_is_not_a_list():
    with pytest.raises(ContainerdConfigError, match="^enable_cri: disabled_plugins must be a list in the file, found a dict$"):
        merged("version = 2\n[disabled_plugins]\ncri = true\n", {}, 2)


def test_enable_cri_false_keeps_the_list():
    text, plan, _warnings = merged('version = 2\ndisabled_plugins = ["cri"]\n', {"enable_cri": False}, 2)
    assert tomllib.loads(text)["disabled_plugins"] == ["cri"] and plan.changed_keys == []


@pytest.mark.parametrize("version, before, after", [
    (2, "", ["io.containerd.grpc.v1.cri"]),
    (2, 'disabled_plugins = ["cri", "io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart", "io.containerd.grpc.v1.cri"]),
    (3, 'disabled_plugins = ["io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart", "io.containerd.grpc.v1.cri"]),
    (1, "", ["cri"]),
    (1, 'disabled_plugins = ["io.containerd.internal.v1.restart"]', ["io.containerd.internal.v1.restart", "cri"]),
])
def test_disable_cri_adds_the_plugin_id_of_the_files_version(version, before, after):
    header = "version = %d\n" % version if version > 1 else ""
    text, plan, _warnings = merged(header + before + "\n", {"disable_cri": True, "enable_cri": True}, version)
    assert tomllib.loads(text)["disabled_plugins"] == after == plan.data["disabled_plugins"]
    assert plan.changed_keys == ["disabled_plugins"]


def test_disable_cri_twice_changes_nothing():
    text = 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]  # Docker only\n'
    after, plan, _warnings = merged(text, {"disable_cri": True}, 2)
    assert after == text and plan.edits == [] and plan.changed_keys == []


def test_disable_cri_keeps_the_rest_of_the_file():
    after, _plan, _warnings = merged(V2_WITH_NVIDIA, {"disable_cri": True}, 2)
    assert after.replace('disabled_plugins = ["io.containerd.grpc.v1.cri"]\n', "", 1) == V2_WITH_NVIDIA


def test_disable_cri_refuses_a_disabled_plugins_that_is_not_a_list():
    with pytest.raises(ContainerdConfigError) as err:
        merged('version = 2\ndisabled_plugins = "cri"\n', {"disable_cri": True}, 2)
    assert err.value.msg == "disable_cri: disabled_plugins must be a list in the file, found a string"
    assert err.value.extra["option"] == "disable_cri"


def test_disable_cri_must_be_a_bool():
    with pytest.raises(InputError) as err:
        cc.Request({"disable_cri": "yes"})
    assert err.value.option == "disable_cri"


@pytest.mark.parametrize("dump, problems, cri_enabled", [
    ('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "p"\n',
     ["the CRI plugin is still enabled (disabled_plugins is [])"], True),
    ('version = 2\ndisabled_plugins = ["io.containerd.internal.v1.restart"]\n',
     ["the CRI plugin is still enabled (disabled_plugins is ['io.containerd.internal.v1.restart'])"], True),
    ('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', [], False),
    ('disabled_plugins = ["cri"]\n', [], False),
])
def test_verify_dump_with_disable_cri_wants_the_cri_plugin_disabled(dump, problems, cri_enabled):
    got, effective = cc.verify_dump(dump, cc.Request({"disable_cri": True, "enable_cri": True}), 2)
    assert got == problems and effective["cri_enabled"] is cri_enabled


# ----------------------------------------------------------------------------- registry conflict


def test_tls_configs_with_config_path_conflict():
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n'
            '[plugins."io.containerd.grpc.v1.cri".registry.configs."reg.example".tls]\nca_file = "/ca.crt"\n')
    assert "configs.<host>.tls (reg.example)" in cc.registry_conflicts(tomllib.loads(text), 2)


def test_no_conflict_without_config_path():
    assert cc.registry_conflicts(tomllib.loads((FIXTURES / "v1-seed003.toml").read_text()), 1) is None


# ----------------------------------------------------------------------------- dump verification


def test_verify_dump_reports_each_wrong_value():
    dump = (FIXTURES / "v3-default-2.1.toml").read_text()
    problems, effective = cc.verify_dump(dump, cc.Request(dict(ALL_OPTIONS)), 3)
    text = " | ".join(problems)
    assert "sandbox image is 'registry.k8s.io/pause:3.10'" in text
    assert "registry config_path is ''" in text
    assert "runtime 'kata' is missing" in text
    assert "runtime 'runc' has SystemdCgroup = False, expected True" in text
    assert effective["cri_enabled"] is True and effective["default_runtime"] == "runc"


def test_verify_dump_accepts_a_matching_dump():
    after, _plan, _warnings = merged((FIXTURES / "v3-default-2.1.toml").read_text(), dict(ALL_OPTIONS), 3)
    problems, effective = cc.verify_dump(after, cc.Request(dict(ALL_OPTIONS)), 3)
    assert problems == []
    assert effective["runtimes"] == {"runc": "io.containerd.runc.v2", "kata": "io.containerd.kata.v2"}
    assert effective["systemd_cgroup"] is True


def test_verify_dump_never_quotes_a_secret_value():
    request = cc.Request({"merge": {"registry": {"auth": {"password": "hunter2-expected"}}, "plain": "x"}})
    problems, _effective = cc.verify_dump('version = 2\n[registry.auth]\npassword = "hunter2-actual"\n', request, 2)
    assert "registry.auth.password differs from the requested value" in problems
    assert "plain is None, expected 'x'" in problems
    assert not any("hunter2" in p for p in problems)


# ----------------------------------------------------------------------------- migration


def test_v1_to_v2_migration_renames_plugins_and_keeps_comments():
    text = (FIXTURES / "v1-seed003.toml").read_text()
    after, data = cc.migrate_v1_to_v2(text, tomllib.loads(text))
    got = tomllib.loads(after)
    assert got == data and got["version"] == 2
    assert set(got["plugins"]) == {
        "io.containerd.monitor.v1.cgroups", "io.containerd.grpc.v1.cri", "io.containerd.service.v1.diff-service",
        "io.containerd.runtime.v1.linux", "io.containerd.gc.v1.scheduler"}
    assert got["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "k8s.gcr.io/pause-amd64:3.1"
    assert "## default_runtime为默认runtime" in after
    assert '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]' in after


def test_v1_migration_refuses_duplicate_sections():
    text = '[plugins.cri]\na = 1\n[plugins."io.containerd.grpc.v1.cri"]\nb = 2\n'
    with pytest.raises(ContainerdConfigError, match="both plugins.cri"):
        cc.migrate_v1_to_v2(text, tomllib.loads(text))


def test_v1_migration_of_inline_plugin_tables_asks_for_a_hand_edit():
    text = '[plugins]\ncri = { sandbox_image = "x" }\n'
    with pytest.raises(ContainerdConfigError, match="inline tables or dotted keys"):
        cc.migrate_v1_to_v2(text, tomllib.loads(text))


def test_unversioned_upgrade_adds_version_after_the_licence_header():
    text = (FIXTURES / "docker-default.toml").read_text()
    after, data = cc.upgrade_unversioned(text, tomllib.loads(text), 3)
    assert tomllib.loads(after) == data == {"version": 3, "disabled_plugins": ["io.containerd.grpc.v1.cri"]}
    assert after.index("limitations under the License.") < after.index("version = 3") < after.index("disabled_plugins")
