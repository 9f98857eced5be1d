# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One containerd_config task: the controller's run() with the real node-side helper module in-process,
real files under tmp_path and a stand-in containerd script (tests/containerd_config_harness.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import tomllib
from containerd_config_harness import FIXTURES, LocalNode, fake_containerd, run_local
from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config_toml as toml_edit
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError

V2 = '''\
# Managed by hand: keep this comment.
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
'''
V3_MINIMAL = "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10'\n"
C17 = "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1"


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "etc" / "containerd" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def task(conf, binary, **params):
    return dict(path=str(conf), containerd_path=binary, **params)


def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- calls per task


def test_change_costs_three_calls_converged_one_check_two(conf, tmp_path):
    binary = fake_containerd(tmp_path / "bin", version=C17)
    conf.write_text(V2)
    changed, node = run_local(**task(conf, binary, sandbox_image="example.org/pause:9", backup=True))
    assert changed["changed"] and changed["validated"] and changed["restart_required"]
    assert node.calls == ["inspect", "dump", "install"]
    dump_args, install_args = node.log[1], node.log[2]
    assert "candidate" in dump_args and "candidate" not in install_args and "content" not in install_args, "the candidate travels once"
    assert install_args["staged"] and install_args["staged_sha256"]
    assert tomllib.loads(conf.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "example.org/pause:9"
    assert conf.read_text().startswith("# Managed by hand: keep this comment.\n")
    assert Path(changed["backup_file"]).read_text() == V2
    assert leftovers(conf.parent) == []
    mtime = os.stat(conf).st_mtime_ns

    again, node = run_local(**task(conf, binary, sandbox_image="example.org/pause:9"))
    assert again["changed"] is False and again["validated"] and node.calls == ["inspect"]
    assert again["values"]["sandbox_image"] == "example.org/pause:9" and os.stat(conf).st_mtime_ns == mtime

    checked, node = run_local(check_mode=True, diff=True, **task(conf, binary, sandbox_image="example.org/pause:10"))
    assert checked["changed"] and checked["validated"] and node.calls == ["inspect", "dump"]
    assert 'sandbox_image = "example.org/pause:10"' in checked["diff"]["after"]
    assert checked["diff"]["before"] == conf.read_text() and checked["diff"]["before_header"] == str(conf)
    assert os.stat(conf).st_mtime_ns == mtime and leftovers(conf.parent) == []


def test_a_converged_file_is_never_parsed_by_tomlkit(conf, tmp_path, monkeypatch):
    binary = fake_containerd(tmp_path / "bin", version=C17)
    conf.write_text(V2)
    run_local(**task(conf, binary, sandbox_image="example.org/pause:9", systemd_cgroup=True))

    def no_parse(*_args, **_kwargs):
        raise AssertionError("tomlkit.parse called for a file that needs no change")

    monkeypatch.setattr(toml_edit.tomlkit, "parse", no_parse)
    result, node = run_local(diff=True, **task(conf, binary, sandbox_image="example.org/pause:9", systemd_cgroup=True))
    assert result["changed"] is False and node.calls == ["inspect"] and result["diff"]["before"] == result["diff"]["after"]


def test_a_value_change_is_written_in_its_line_without_tomlkit_parsing(conf, tmp_path, monkeypatch):
    conf.write_text(V2)
    monkeypatch.setattr(toml_edit.tomlkit, "parse", lambda *_a, **_k: pytest.fail("tomlkit.parse called for a one-value change"))
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="example.org/pause:9"))
    assert result["changed"] and conf.read_text() == V2.replace("registry.k8s.io/pause:3.6", "example.org/pause:9")


def test_tomlkit_missing_on_the_controller_is_a_clear_error_before_the_node_is_asked(conf, monkeypatch):
    monkeypatch.setattr(toml_edit, "HAS_TOMLKIT", False)
    monkeypatch.setattr(toml_edit, "TOMLKIT_IMPORT_ERROR", ImportError("No module named 'tomlkit'"))
    node = LocalNode()
    with pytest.raises(ContainerdConfigError) as err:
        run_local(node=node, **task(conf, "containerd", sandbox_image="x"))
    assert "tomlkit is required on the Ansible controller" in err.value.msg and "No module named 'tomlkit'" in err.value.msg
    assert node.calls == []


def test_no_diff_unless_asked(conf, tmp_path):
    conf.write_text(V2)
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="x.org/p:1"))
    assert "diff" not in result


# ----------------------------------------------------------------------------- starting points


def test_missing_file_and_directory_start_from_config_default(tmp_path):
    conf = tmp_path / "etc" / "containerd" / "config.toml"
    binary = fake_containerd(tmp_path / "bin")
    result, node = run_local(**task(conf, binary, sandbox_image="example.org/pause:9", systemd_cgroup=True))
    got = tomllib.loads(conf.read_text())
    default = tomllib.loads((FIXTURES / "v3-default-2.1.toml").read_text())
    assert result["changed"] and result["config_version"] == 3 and node.calls == ["inspect", "dump", "install"]
    assert got["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    assert got["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert got["plugins"]["io.containerd.gc.v1.scheduler"] == default["plugins"]["io.containerd.gc.v1.scheduler"]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644


def test_comment_only_file_keeps_its_comments_on_top(conf, tmp_path):
    conf.write_text("# provisioned by the image\n")
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin"), sandbox_image="example.org/pause:9"))
    assert result["changed"] and conf.read_text().startswith("# provisioned by the image\n\n")


def test_docker_default_file_gets_the_binary_version_and_cri_enabled(conf, tmp_path):
    source = (FIXTURES / "docker-default.toml").read_text()
    conf.write_text(source)
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin"), sandbox_image="example.org/pause:9"))
    after = conf.read_text()
    got = tomllib.loads(after)
    assert result["config_version"] == 3 and got["version"] == 3 and got["disabled_plugins"] == []
    assert got["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    for line in source.splitlines():
        if line.startswith("#"):
            assert line in after.splitlines()
    assert after.index("Copyright 2018-2022 Docker Inc.") < after.index("version = 3") < after.index('#root = "/var/lib/containerd"')
    assert any("no version key" in w for w in result["warnings"])


def test_without_binary_the_merge_is_not_validated_and_says_so(conf, tmp_path):
    conf.write_text(V2)
    result, node = run_local(**task(conf, str(tmp_path / "nope" / "containerd"), sandbox_image="example.org/pause:9"))
    assert result["changed"] and not result["validated"] and node.calls == ["inspect", "install"]
    assert "content" in node.log[1], "nothing staged without validation: the content goes with install"
    assert result["values"]["sandbox_image"] == "example.org/pause:9"
    assert any("not validated" in w for w in result["warnings"])


def test_validate_false_skips_the_dump(conf, tmp_path):
    conf.write_text(V2)
    result, node = run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), validate=False, sandbox_image="x.org/p:1"))
    assert node.calls == ["inspect", "install"] and not result["validated"]
    assert node.log[0]["dump_current"] is False


# ----------------------------------------------------------------------------- failures leave the file alone


def test_invalid_toml_reports_line_and_column(conf, tmp_path):
    conf.write_text('version = 2\n[plugins\nfoo = 1\n')
    before = conf.read_bytes()
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, fake_containerd(tmp_path / "bin"), sandbox_image="x"))
    assert "line 2" in err.value.msg and "column" in err.value.msg and str(conf) in err.value.msg
    assert err.value.extra["line"] == 2 and conf.read_bytes() == before


def test_broken_binary_fails_with_rc_stdout_stderr_and_writes_nothing(conf, tmp_path):
    conf.write_text(V2)
    binary = fake_containerd(tmp_path / "bin", version_rc=3)
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, binary, sandbox_image="example.org/pause:9"))
    assert "exited with 3" in err.value.msg and "not found" not in err.value.msg
    assert err.value.extra["rc"] == 3 and "containerd: broken" in err.value.extra["stderr"] and "stdout" in err.value.extra
    assert conf.read_text() == V2


def test_broken_binary_with_validate_false_is_a_warning(conf, tmp_path):
    conf.write_text(V2)
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin", version_rc=3), validate=False, sandbox_image="x.org/p:1"))
    assert result["changed"] and any("exited with 3" in w for w in result["warnings"])


def test_validate_true_without_binary_fails(conf, tmp_path):
    conf.write_text(V2)
    with pytest.raises(ContainerdConfigError, match="validate is true but the containerd binary"):
        run_local(**task(conf, "/nonexistent/containerd", validate=True, sandbox_image="x"))


def test_containerd_rejecting_the_candidate_is_quoted_and_nothing_is_left(conf, tmp_path):
    conf.write_text(V2)
    stderr = 'containerd: failed to load TOML: invalid disabled plugin URI "cri" expect io.containerd.x.vx\n'
    binary = fake_containerd(tmp_path / "bin", version=C17, dump_rc=1, dump_stderr=stderr)
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, binary, sandbox_image="example.org/pause:9"))
    assert "invalid disabled plugin URI" in err.value.msg and "rc=1" in err.value.msg and err.value.extra["rc"] == 1
    assert "candidate" not in err.value.extra and conf.read_text() == V2 and leftovers(conf.parent) == []


def test_dump_verification_fails_when_a_value_is_not_effective_and_discards_the_candidate(conf, tmp_path):
    """containerd 2.1 ignores the CRI keys of a version 1 file with only a warning: never report success."""
    seed = (FIXTURES / "v1-seed003.toml").read_text()
    conf.write_text(seed)
    warning = ('time="2026-11-23T14:05:49Z" level=warning msg="Ignoring unknown key in TOML for plugin" '
               'error="strict mode: fields in the document are missing in the target struct" key=sandbox_image plugin=io.containerd.grpc.v1.cri')
    binary = fake_containerd(tmp_path / "bin", dump_output=(FIXTURES / "v3-default-2.1.toml").read_text(), dump_stderr=warning + "\n")
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, binary, sandbox_image="example.org/pause:9"))
    msg = err.value.msg
    assert "sandbox image is 'registry.k8s.io/pause:3.10'" in msg and "expected 'example.org/pause:9'" in msg
    assert "set migrate: true" in msg and "key=sandbox_image" in msg
    assert conf.read_text() == seed and leftovers(conf.parent) == []


def test_dump_verification_fails_when_cri_stays_disabled(conf, tmp_path):
    conf.write_text('version = 2\ndisabled_plugins = ["cri"]\n')
    with pytest.raises(ContainerdConfigError, match="the CRI plugin is disabled"):
        run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), enable_cri=False, sandbox_image="example.org/pause:9"))


def test_disable_cri_for_a_docker_only_containerd_is_validated_and_converges(conf, tmp_path):
    conf.write_text('version = 2\ndisabled_plugins = ["cri"]\n')
    binary = fake_containerd(tmp_path / "bin", version=C17)
    result, node = run_local(**task(conf, binary, disable_cri=True))
    assert result["changed"] and result["validated"] and result["values"]["cri_enabled"] is False
    assert result["changed_keys"] == ["disabled_plugins"] and node.calls == ["inspect", "dump", "install"]
    assert tomllib.loads(conf.read_text())["disabled_plugins"] == ["io.containerd.grpc.v1.cri"]
    again, node = run_local(**task(conf, binary, disable_cri=True))
    assert again["changed"] is False and node.calls == ["inspect"]


def test_disable_cri_fails_when_containerd_still_serves_cri(conf, tmp_path):
    conf.write_text(V2)
    binary = fake_containerd(tmp_path / "bin", version=C17, dump_output=V2)  # a containerd that ignores the setting
    with pytest.raises(ContainerdConfigError, match=r"the CRI plugin is still enabled \(disabled_plugins is \[\]\)"):
        run_local(**task(conf, binary, disable_cri=True))
    assert conf.read_text() == V2 and leftovers(conf.parent) == []


def test_file_newer_than_the_binary_is_refused(conf, tmp_path):
    conf.write_text(V3_MINIMAL)
    with pytest.raises(ContainerdConfigError, match="version 3 config but containerd 1.7 reads versions up to 2"):
        run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="x"))


def test_mirrors_with_config_path_is_refused_with_the_fix(conf, tmp_path):
    conf.write_text((FIXTURES / "v1-seed003.toml").read_text())
    before = conf.read_bytes()
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, fake_containerd(tmp_path / "bin", version="containerd x 1.6.20"), registry_config_path="/etc/containerd/certs.d"))
    assert "plugins.cri.registry.mirrors (docker.io)" in err.value.msg
    assert "/etc/containerd/certs.d/<registry host>/hosts.toml" in err.value.msg
    assert conf.read_bytes() == before


def test_non_utf8_file_is_named(conf, tmp_path):
    conf.write_bytes(b"version = 2\n# \xff\n")
    with pytest.raises(ContainerdConfigError, match="is not UTF-8 text"):
        run_local(**task(conf, fake_containerd(tmp_path / "bin")))


# ----------------------------------------------------------------------------- symlinks


def test_symlink_is_followed_and_stays_a_link(conf, tmp_path):
    real = tmp_path / "real" / "config.toml"
    real.parent.mkdir()
    real.write_text(V2)
    conf.symlink_to(real)
    result, _node = run_local(**task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="example.org/pause:9", backup=True))
    assert result["changed"] and conf.is_symlink() and "example.org/pause:9" in real.read_text()
    assert Path(result["backup_file"]).parent == real.parent and leftovers(real.parent) == []


@pytest.mark.parametrize("target, message", [("/dev/null", "not a regular file"), ("missing.toml", "does not exist")])
def test_symlink_to_something_else_is_refused(conf, tmp_path, target, message):
    conf.symlink_to(target)
    with pytest.raises(ContainerdConfigError, match=message):
        run_local(**task(conf, fake_containerd(tmp_path / "bin"), sandbox_image="x"))


# ----------------------------------------------------------------------------- concurrent writers


class RacingNode(LocalNode):
    """Another writer changes the file right after this task read it, ``times`` times."""

    def __init__(self, conf, times):
        super().__init__()
        self.conf, self.times = conf, times

    def inspect(self, *args, **kwargs):
        state = super().inspect(*args, **kwargs)
        if self.times:
            self.times -= 1
            text = self.conf.read_text()
            self.conf.write_text(text + "\n[x-other-writer-%d]\nn = %d\n" % (self.times, self.times))
        return state


def test_a_change_by_another_writer_is_merged_not_lost(conf, tmp_path):
    conf.write_text(V2)
    params = task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="example.org/pause:9")
    result, node = run_local(node=RacingNode(conf, times=1), **params)
    data = tomllib.loads(conf.read_text())
    assert data["x-other-writer-0"] == {"n": 0}, "the other writer's change is kept"
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "example.org/pause:9"
    assert node.calls == ["inspect", "dump", "install", "inspect", "dump", "install"]
    assert any("changed while this task worked on it" in w for w in result["warnings"])
    assert leftovers(conf.parent) == []


def test_a_file_that_keeps_changing_fails_saying_why(conf, tmp_path):
    conf.write_text(V2)
    with pytest.raises(ContainerdConfigError) as err:
        run_local(node=RacingNode(conf, times=9), **task(conf, fake_containerd(tmp_path / "bin", version=C17), sandbox_image="example.org/pause:9"))
    assert "changed by someone else" in err.value.msg and "gave up after 5 attempts" in err.value.msg
    assert "example.org/pause:9" not in conf.read_text() and leftovers(conf.parent) == []


# ----------------------------------------------------------------------------- credentials


AUTH_FILE = V2 + '''  [plugins."io.containerd.grpc.v1.cri".registry.configs."old.example".auth]
    username = "old-robot"
    password = "old-s3cret-in-file"
'''


def test_credentials_never_leave_the_task(conf, tmp_path):
    conf.write_text(AUTH_FILE)
    merge = {"plugins": {"io.containerd.grpc.v1.cri": {"registry": {"configs": {"new.example": {"auth": {
        "username": "new-robot", "password": "new-s3cret-asked", "identitytoken": "id-t0ken-asked"}}}}}},
        "x-vendor": {"api_key": "vendor-k3y-asked"}}
    binary = fake_containerd(tmp_path / "bin", version=C17, dump_stderr='level=warning msg="auth new-s3cret-asked looks odd"\n')
    result, node = run_local(diff=True, **task(conf, binary, merge=merge, secret_keys=["api_key"]))
    shown = json.dumps(result)
    for secret in ("old-s3cret-in-file", "old-robot", "new-s3cret-asked", "new-robot", "id-t0ken-asked", "vendor-k3y-asked"):
        assert secret not in shown
        assert secret in conf.read_text(), "the file itself holds the real values"
    after = tomllib.loads(result["diff"]["after"])
    assert after["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"]["new.example"]["auth"]["password"] == toml_edit.MASK
    assert "old-s3cret-in-file" not in result["diff"]["before"] and toml_edit.MASK in result["diff"]["before"]
    assert any("********" in w for w in result["warnings"])  # containerd's warning, masked


def test_credentials_never_appear_in_a_failure(conf, tmp_path):
    conf.write_text(AUTH_FILE)
    binary = fake_containerd(tmp_path / "bin", version=C17, dump_rc=1, dump_stderr="toml: line 9: password = old-s3cret-in-file is odd\n")
    with pytest.raises(ContainerdConfigError) as err:
        run_local(**task(conf, binary, merge={"registry": {"auth": {"password": "new-s3cret-asked"}}}))
    shown = json.dumps([err.value.msg, err.value.extra])
    assert "old-s3cret-in-file" not in shown and "new-s3cret-asked" not in shown and "rc=1" in err.value.msg


def test_new_file_with_credentials_is_private(tmp_path):
    conf = tmp_path / "etc" / "config.toml"
    run_local(**task(conf, fake_containerd(tmp_path / "bin"), merge={"x": {"password": "p"}}))
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600


# ----------------------------------------------------------------------------- migration


def test_migrate_runs_containerd_config_migrate_after_the_v1_rename(conf, tmp_path):
    seed = (FIXTURES / "v1-seed003.toml").read_text()
    conf.write_text(seed)
    binary = fake_containerd(tmp_path / "bin", migrate_output=V3_MINIMAL)
    result, node = run_local(**task(conf, binary, migrate=True, backup=True, sandbox_image="example.org/pause:9"))
    migrate_input = tomllib.loads(node.log[1]["candidate"])
    assert node.log[1]["command"] == "migrate" and migrate_input["version"] == 2 and "io.containerd.grpc.v1.cri" in migrate_input["plugins"]
    assert node.calls == ["inspect", "dump", "dump", "install"]
    assert result["migrated_from"] == 1 and result["config_version"] == 3
    assert tomllib.loads(conf.read_text())["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "example.org/pause:9"
    assert Path(result["backup_file"]).read_text() == seed


def test_bad_input_fails_before_the_node_is_asked(conf):
    node = LocalNode()
    with pytest.raises(ContainerdConfigError) as err:
        run_local(node=node, path="relative/config.toml")
    assert err.value.extra["option"] == "path" and node.calls == []
