# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orchestration of the action plugin: what it asks the node to run, with which arguments.

The connection is faked, the files are real (tmp_path stands for the node's filesystem).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import shlex
import shutil
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import tomllib
from ansible.errors import AnsibleActionFail
from ansible_collections.kubeforge.cluster.plugins.action.containerd_config import ActionModule

FIXTURES = Path(__file__).resolve().parents[3] / "integration" / "fixtures" / "containerd"
BIN = "/opt/containerd/bin/containerd"
ENV = "LANG=C LC_ALL=C LANGUAGE=C"

V2 = '''\
# hand-written, keep me
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
'''


class FakeShell:
    def __init__(self):
        self.tmpdir = None

    @staticmethod
    def join_path(*parts):
        return posixpath.join(*parts)


class Node:
    """The managed node: real files plus a scripted containerd."""

    def __init__(self, tmp_path, version="containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1",
                 dump_rc=0, dump_stderr=""):
        self.root = tmp_path
        self.remote_tmp = tmp_path / "remote-tmp"
        self.version = version
        self.dump_rc = dump_rc
        self.dump_stderr = dump_stderr
        self.commands = []
        self.modules = []
        self.removed = []
        self.command_check_modes = []
        self.task = None

    def make_tmp(self, action):
        self.remote_tmp.mkdir(exist_ok=True)
        action._connection._shell.tmpdir = str(self.remote_tmp)
        return str(self.remote_tmp)

    def stat(self, path, all_vars, follow, checksum=True):
        p = Path(path)
        return {"exists": p.exists(), "isdir": p.is_dir(), "checksum": "1"}

    def execute_module(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        if module_name == "ansible.legacy.command":
            # argv through the command module keeps stderr out of the TOML on stdout (no tty);
            # read-only commands must run even in check mode.
            argv = module_args["argv"]
            assert argv[:4] == ["env"] + ENV.split() and module_args["_uses_shell"] is False
            self.command_check_modes.append(self.task.check_mode)
            return self.command(ENV + " " + shlex.join(argv[4:]))
        self.modules.append((module_name, dict(module_args)))
        if module_name == "ansible.legacy.slurp":
            return {"content": base64.b64encode(Path(module_args["src"]).read_bytes()).decode(), "encoding": "base64"}
        if module_name == "ansible.legacy.file":
            Path(module_args["path"]).mkdir(parents=True, exist_ok=True)
            return {"changed": False}
        if module_name == "ansible.legacy.copy":
            dest = Path(module_args["dest"])
            backup = None
            if module_args["backup"] and dest.exists():
                backup = str(dest) + ".backup"
                shutil.copy(dest, backup)
            shutil.copy(module_args["src"], dest)
            return {"changed": True, "backup_file": backup} if backup else {"changed": True}
        raise AssertionError("unexpected module %s" % module_name)

    def command(self, cmd, sudoable=True, **kwargs):
        self.commands.append(cmd)
        assert cmd.startswith(ENV + " ")
        argv = shlex.split(cmd[len(ENV) + 1:])
        if argv[1:] == ["--version"]:
            return {"rc": 0, "stdout": self.version + "\n", "stderr": ""}
        if argv[1:] == ["config", "default"]:
            return {"rc": 0, "stdout": (FIXTURES / "v2-default-1.7.toml").read_text(), "stderr": ""}
        if argv[3:] == ["config", "dump"]:
            out = Path(argv[2]).read_text() if self.dump_rc == 0 else ""
            return {"rc": self.dump_rc, "stdout": out, "stderr": self.dump_stderr}
        raise AssertionError("unexpected command %r" % cmd)

    def transfer(self, remote_path, data):
        Path(remote_path).write_text(data)
        return remote_path

    def remove_tmp(self, path, force=False):
        self.removed.append(path)


def make_action(node, args, check_mode=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "kubeforge.cluster.containerd_config"
    connection = MagicMock()
    connection._shell = FakeShell()
    action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    action._make_tmp_path = lambda remote_user=None: node.make_tmp(action)
    action._execute_remote_stat = node.stat
    action._execute_module = node.execute_module
    action._low_level_execute_command = MagicMock(side_effect=AssertionError("commands must go through ansible.legacy.command"))
    node.task = task
    action._transfer_data = node.transfer
    action._fixup_perms2 = MagicMock(return_value=None)
    action._remove_tmp_path = node.remove_tmp
    action._remote_expand_user = lambda path, sudoable=True, pathsep=None: path
    return action


def test_apply_runs_exact_commands_and_installs_with_copy(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    node = Node(tmp_path)
    action = make_action(node, {"path": str(path), "containerd_path": BIN, "sandbox_image": "example.org/pause:9", "backup": True})
    result = action.run(task_vars={})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["validated"] and result["restart_required"]
    tmp = node.remote_tmp
    assert node.commands == [
        "%s %s --version" % (ENV, BIN),
        "%s %s --config %s/containerd-config-1.toml config dump" % (ENV, BIN, tmp),
    ]
    assert [m[0] for m in node.modules] == ["ansible.legacy.slurp", "ansible.legacy.copy"]
    copy_args = node.modules[1][1]
    after = path.read_text()
    assert copy_args == {
        "src": "%s/containerd-config-2.toml" % tmp,
        "dest": str(path),
        "backup": True,
        "follow": True,
        "checksum": hashlib.sha1(after.encode()).hexdigest(),
        "_original_basename": "config.toml",
    }
    assert tomllib.loads(after)["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "example.org/pause:9"
    assert after.startswith("# hand-written, keep me\n")
    assert result["backup_file"] == str(path) + ".backup"
    assert result["diff"]["before"] == V2 and result["diff"]["after"] == after
    assert node.removed == [str(tmp)]  # remote temp files cleaned up
    action._fixup_perms2.assert_called_with(["%s/containerd-config-2.toml" % tmp], execute=False)


def test_second_run_changes_nothing(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(V2.replace("registry.k8s.io/pause:3.6", "example.org/pause:9"))
    node = Node(tmp_path)
    result = make_action(node, {"path": str(path), "containerd_path": BIN, "sandbox_image": "example.org/pause:9"}).run(task_vars={})
    assert result["changed"] is False and result["validated"]
    assert [m[0] for m in node.modules] == ["ansible.legacy.slurp"]


def test_check_mode_validates_on_the_node_but_never_copies(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    node = Node(tmp_path)
    result = make_action(node, {"path": str(path), "containerd_path": BIN, "sandbox_image": "example.org/pause:9"}, check_mode=True).run(task_vars={})
    assert result["changed"] and result["validated"]
    assert any(cmd.endswith("config dump") for cmd in node.commands)
    assert node.command_check_modes and not any(node.command_check_modes), "validation must really run in check mode"
    assert node.task.check_mode is True, "the task's check mode is restored afterwards"
    assert [m[0] for m in node.modules] == ["ansible.legacy.slurp"]
    assert path.read_text() == V2


def test_missing_directory_is_created_before_the_file(tmp_path):
    path = tmp_path / "etc" / "containerd" / "config.toml"
    node = Node(tmp_path)
    result = make_action(node, {"path": str(path), "containerd_path": BIN}).run(task_vars={})
    assert not result.get("failed"), result.get("msg")
    assert path.exists() and (tmp_path / "etc" / "containerd").is_dir()


def test_missing_file_is_created_from_config_default_with_mode_0644(tmp_path):
    path = tmp_path / "config.toml"
    node = Node(tmp_path)
    result = make_action(node, {"path": str(path), "containerd_path": BIN, "systemd_cgroup": True}).run(task_vars={})
    assert result["changed"] and result["config_version"] == 2
    assert "%s %s config default" % (ENV, BIN) in node.commands
    assert [m[0] for m in node.modules] == ["ansible.legacy.file", "ansible.legacy.copy"]  # nothing to slurp
    assert node.modules[0][1] == {"path": str(tmp_path), "state": "directory"}
    assert node.modules[1][1]["mode"] == "0644"
    runc = tomllib.loads(path.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True


def test_containerd_error_fails_quotes_stderr_and_leaves_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    node = Node(tmp_path, dump_rc=1, dump_stderr='level=fatal msg="invalid disabled plugin URI \\"cri\\""\n')
    result = make_action(node, {"path": str(path), "containerd_path": BIN, "sandbox_image": "example.org/pause:9"}).run(task_vars={})
    assert result["failed"] and result["changed"] is False
    assert "invalid disabled plugin URI" in result["msg"]
    assert "ansible.legacy.copy" not in [m[0] for m in node.modules]
    assert path.read_text() == V2
    assert node.removed == [str(node.remote_tmp)]


def test_missing_binary_with_validate_true_fails(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    node = Node(tmp_path)
    node.command = lambda cmd, sudoable=True, **kw: {"rc": 127, "stdout": "", "stderr": "sh: 1: /nope: not found"}
    action = make_action(node, {"path": str(path), "containerd_path": "/nope", "validate": True, "sandbox_image": "x"})
    result = action.run(task_vars={})
    assert result["failed"] and "containerd_path" in result["msg"] and "/nope: not found" in result["msg"]


def test_unknown_option_is_rejected(tmp_path):
    node = Node(tmp_path)
    with pytest.raises(AnsibleActionFail):
        make_action(node, {"path": str(tmp_path / "c.toml"), "sandbox": "x"}).run(task_vars={})
