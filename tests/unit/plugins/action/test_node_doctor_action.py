# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_doctor's action plugin: the module runs for real in check mode, and the node's clock is timed."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible_collections.kubeforge.cluster.plugins.action import node_doctor
from ansible_collections.kubeforge.cluster.plugins.action.node_doctor import ActionModule


def make(date_stdout, module_answer, clock):
    task = MagicMock()
    task.args = {"checks": ["swap"]}
    task.check_mode = True
    task.async_val = 0
    task.action = "kubeforge.cluster.node_doctor"
    action = ActionModule(task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), None)
    seen = {}

    def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        seen["check_mode"] = task.check_mode
        seen["module"] = module_name
        return dict(module_answer)

    action._execute_module = execute_module
    action._low_level_execute_command = MagicMock(return_value={"rc": 0, "stdout": date_stdout, "stderr": ""})
    node_doctor.time.time = clock
    return action, task, seen


@pytest.fixture(autouse=True)
def restore_clock(monkeypatch):
    monkeypatch.setattr(node_doctor, "time", MagicMock())


def ticks(*values):
    values = list(values)
    return lambda: values.pop(0)


def test_offset_from_one_date_call_and_the_module_runs_in_check_mode():
    action, task, seen = make("1000.500\n", {"checks": [], "time": 990.0}, ticks(1.0, 2.0, 1000.0, 1000.2))
    result = action.run(task_vars={})
    assert seen == {"check_mode": False, "module": "kubeforge.cluster.node_doctor"} and task.check_mode is True
    assert result["clock_offset"] == pytest.approx(0.4) and result["clock_uncertainty"] == pytest.approx(0.1)
    action._low_level_execute_command.assert_called_once_with("date +%s.%N", sudoable=False)


def test_without_gnu_date_the_module_call_is_the_bracket():
    action, _task, _seen = make("%s.%N\n", {"checks": [], "time": 11.0}, ticks(10.0, 13.0, 20.0, 20.1))
    result = action.run(task_vars={})
    assert result["clock_offset"] == pytest.approx(-0.5) and result["clock_uncertainty"] == pytest.approx(1.5)


def test_a_failed_module_gets_no_clock():
    action, _task, _seen = make("1.0", {"failed": True, "msg": "unknown checks dns"}, ticks(1.0, 2.0))
    result = action.run(task_vars={})
    assert result["failed"] and "clock_offset" not in result
