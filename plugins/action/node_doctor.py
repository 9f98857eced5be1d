# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.node_doctor: runs the module and times the call on the controller.

The node reports its clock (``time``); the controller's clock before and after the call brackets that
moment, so ``clock_offset`` = node time - midpoint is exact to within ``clock_uncertainty`` (half the
call's duration). The ``doctor_report`` filter compares the offsets of all nodes: the skew between two
nodes is the difference of their offsets, whatever the controller's own clock says.
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
        if isinstance(answer.get("time"), (int, float)):
            result["clock_offset"] = round(answer["time"] - (started + ended) / 2, 3)
            result["clock_uncertainty"] = round((ended - started) / 2, 3)
        return result
