# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin: what it asks the node to run, with which arguments, through which ActionBase API.

The connection is replaced: ``_execute_module`` builds the module arguments with ActionBase's own
``_update_module_args`` (check mode, diff, no_log flags as Ansible sends them) and runs the helper module's
``main()`` here on real files (tmp_path stands for the node). Every other way to reach the node fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import tomllib
import yaml
from ansible.errors import AnsibleActionFail
from containerd_config_harness import fake_containerd
from module_harness import ExitJson, FailJson, call_main, patch_module_exits
from ansible_collections.kubeforge.cluster.plugins.action.containerd_config import ActionModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config import ARGUMENT_SPEC
from ansible_collections.kubeforge.cluster.plugins.modules import containerd_config, containerd_config_node

V2 = '''\
# hand-written, keep me
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
'''


class Task:
    """A task whose check_mode and diff can be read but never written by the plugin."""

    def __init__(self, args, check_mode, diff):
        self.args = args
        self._check_mode = check_mode
        self._diff = diff
        self.async_val = 0
        self.action = "kubeforge.cluster.containerd_config"
        self.no_log = False
        self.environment = []

    @property
    def check_mode(self):
        return self._check_mode

    @property
    def diff(self):
        return self._diff


def make_action(args, check_mode=False, diff=False):
    task = Task(args, check_mode, diff)
    connection = MagicMock()
    connection._shell.tmpdir = None
    action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    action.module_calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        module_args = dict(module_args)
        action._update_module_args(module_name, module_args, task_vars)
        module_args = {k: v for k, v in module_args.items() if not isinstance(v, MagicMock)}  # connection details
        action.module_calls.append((module_name, module_args))
        assert module_name == "kubeforge.cluster.containerd_config_node"
        with pytest.MonkeyPatch.context() as monkeypatch:
            patch_module_exits(monkeypatch)
            kind, result = call_main(containerd_config_node.main, module_args)
        return dict(result, failed=True) if kind is FailJson else result

    action._execute_module = execute_module
    for private in ("_execute_remote_stat", "_low_level_execute_command", "_transfer_data", "_make_tmp_path", "_fixup_perms2",
                    "_remote_expand_user"):
        setattr(action, private, MagicMock(side_effect=AssertionError("%s must not be used" % private)))
    return action


@pytest.fixture
def node(tmp_path):
    conf = tmp_path / "etc" / "config.toml"
    conf.parent.mkdir()
    conf.write_text(V2)
    return conf, fake_containerd(tmp_path / "bin", version="containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1")


def ops(action):
    return [args["op"] for _name, args in action.module_calls]


def test_apply_is_three_helper_runs_and_the_candidate_travels_once(node):
    conf, binary = node
    action = make_action({"path": str(conf), "containerd_path": binary, "sandbox_image": "example.org/pause:9", "backup": True}, diff=True)
    result = action.run(task_vars={})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["validated"] and result["restart_required"]
    assert ops(action) == ["inspect", "dump", "install"]
    assert [args["_ansible_check_mode"] for _n, args in action.module_calls] == [False, False, False]
    candidate = action.module_calls[1][1]["candidate"]
    assert sum(json.dumps(args).count("example.org/pause:9") for _n, args in action.module_calls) == 1, "uploaded once"
    after = conf.read_text()
    assert candidate == after and after.startswith("# hand-written, keep me\n")
    assert tomllib.loads(after)["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "example.org/pause:9"
    assert Path(result["backup_file"]).read_text() == V2
    assert result["diff"]["before"] == V2 and result["diff"]["after"] == after
    assert "invocation" not in result


def test_second_run_is_one_helper_run(node):
    conf, binary = node
    args = {"path": str(conf), "containerd_path": binary, "sandbox_image": "example.org/pause:9"}
    make_action(args).run(task_vars={})
    action = make_action(args)
    result = action.run(task_vars={})
    assert result["changed"] is False and result["validated"] and ops(action) == ["inspect"]


def test_check_mode_validates_on_the_node_and_never_writes(node):
    conf, binary = node
    action = make_action({"path": str(conf), "containerd_path": binary, "sandbox_image": "example.org/pause:9"}, check_mode=True)
    result = action.run(task_vars={})
    assert result["changed"] and result["validated"] and "diff" not in result
    assert ops(action) == ["inspect", "dump"]
    assert all(args["_ansible_check_mode"] for _n, args in action.module_calls), "the helper knows it runs in check mode"
    assert action._task.check_mode is True and conf.read_text() == V2
    assert sorted(p.name for p in conf.parent.iterdir()) == ["config.toml"]


def test_containerd_error_fails_quotes_stderr_and_leaves_the_file(tmp_path, node):
    conf, _binary = node
    binary = fake_containerd(tmp_path / "bin2", version="containerd x 1.7.24", dump_rc=1,
                             dump_stderr='level=fatal msg="invalid disabled plugin URI \\"cri\\""\n')
    action = make_action({"path": str(conf), "containerd_path": binary, "sandbox_image": "example.org/pause:9"})
    result = action.run(task_vars={})
    assert result["failed"] and result["changed"] is False and result["rc"] == 1
    assert "invalid disabled plugin URI" in result["msg"] and "candidate" not in result
    assert ops(action) == ["inspect", "dump"] and conf.read_text() == V2


def test_wrong_type_fails_naming_the_option_without_asking_the_node(node):
    conf, binary = node
    action = make_action({"path": str(conf), "containerd_path": binary, "sandbox_image": ["a", "b"]})
    result = action.run(task_vars={})
    assert result["failed"] and result["msg"] == "sandbox_image: must be a string, got a list" and result["option"] == "sandbox_image"
    assert action.module_calls == []


def test_unknown_option_is_rejected(tmp_path):
    with pytest.raises(AnsibleActionFail):
        make_action({"path": str(tmp_path / "c.toml"), "sandbox": "x"}).run(task_vars={})


def test_documentation_matches_the_argument_spec():
    options = yaml.safe_load(containerd_config.DOCUMENTATION)["options"]
    assert set(options) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        assert options[name].get("default") == spec.get("default", options[name].get("default")), name
        if spec["type"] == "bool":
            assert options[name]["type"] == "bool", name


def test_helper_never_logs_the_candidate_or_content():
    spec = containerd_config_node.argument_spec()
    assert spec["candidate"]["no_log"] and spec["content"]["no_log"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_module_exits(monkeypatch)
        kind, result = call_main(containerd_config_node.main, {"op": "dump", "path": "/nonexistent/x.toml", "candidate": "password = 'hunter2'",
                                                               "containerd_path": "/nonexistent/containerd"})
    assert kind is FailJson and "hunter2" not in json.dumps(result)
    assert kind is not ExitJson
