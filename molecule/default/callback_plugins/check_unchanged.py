# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible-playbook --check`` fail when it predicts a change (molecule's ``check`` step).

molecule's ``check`` action runs the converge playbook with ``--check`` but accepts any result. On a converged
lab a truthful check run must predict nothing: this callback prints every task that reported ``changed`` in
check mode and ends the run with exit code 3 once the recap is printed. Without ``--check`` it does nothing.
"""

from __future__ import annotations

import sys

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: check_unchanged
type: aggregate
short_description: fail a --check run that reports changes
description:
  - In check mode, records every task result with changed=true and exits with code 3 after the play recap.
  - Does nothing when the playbook does not run with --check.
requirements:
  - enable in callbacks_enabled
"""

EXIT_CODE = 3


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "check_unchanged"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._changed = []

    def _record(self, result):
        if context.CLIARGS.get("check") and result._result.get("changed"):
            item = result._result.get("item")
            label = " (item %s)" % (item,) if item is not None and not result._result.get("_ansible_no_log") else ""
            self._changed.append("%s: %s%s" % (result._host.get_name(), result._task.get_name(), label))

    def v2_runner_on_ok(self, result):
        if "results" not in result._result:  # a loop's items are recorded one by one
            self._record(result)

    def v2_runner_item_on_ok(self, result):
        self._record(result)

    def v2_playbook_on_stats(self, stats):
        if not context.CLIARGS.get("check"):
            return
        if self._changed:
            self._display.error(
                "check mode predicted %d change(s) on a converged host; every run after convergence must be a no-op:\n  %s"
                % (len(self._changed), "\n  ".join(self._changed))
            )
            sys.exit(EXIT_CODE)
        self._display.display("check_unchanged: --check predicted no change")
