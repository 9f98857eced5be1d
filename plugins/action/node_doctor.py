# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.node_doctor: runs the module and times the call on the controller.

The node's clock is read with one ``date +%s.%N`` over the connection (no Python start-up, so the round
trip is short); the controller's clock before and after brackets that moment, so ``clock_offset`` = node
time - midpoint is exact to within ``clock_uncertainty`` (half the round trip). Without GNU date the
module's own ``time`` and the module call's duration are used. The ``doctor_report`` filter compares the
offsets of all nodes: the skew between two nodes is the difference of their offsets, whatever the
controller's own clock says.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        # the module changes nothing: it runs for real in check mode too
        saved = self._task.check_mode
        self._task.check_mode = False
        try:
            started = time.time()
            answer = self._execute_module(module_name="kubeforge.cluster.node_doctor", module_args=self._task.args,
                                          task_vars=task_vars, wrap_async=False)
            ended = time.time()
        finally:
            self._task.check_mode = saved
        result.update(answer)
        if not answer.get("failed"):
            clock = self._read_clock()
            if clock is None and isinstance(answer.get("time"), (int, float)):
                clock = (answer["time"], started, ended)
            if clock is not None:
                node_time, before, after = clock
                result["clock_offset"] = round(node_time - (before + after) / 2, 3)
                result["clock_uncertainty"] = round((after - before) / 2, 3)
        return result

    def _read_clock(self):
        """``(node time, controller time before, after)`` from one ``date +%s.%N``; None when that fails."""
        before = time.time()
        answer = self._low_level_execute_command("date +%s.%N", sudoable=False)
        after = time.time()
        try:
            return float((answer.get("stdout") or "").strip()), before, after
        except ValueError:
            return None
