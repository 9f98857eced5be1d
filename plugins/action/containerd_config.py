# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.containerd_config: the TOML merge runs on the controller.

The managed node needs only python3: every node operation is one run of the helper module
kubeforge.cluster.containerd_config_node (inspect; dump of the candidate; install of that same
candidate), through ``_execute_module`` as any action plugin runs a module. Check mode and diff mode
reach the helper the usual way (``_ansible_check_mode``/``_ansible_diff``); the task is never modified.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config import ARGUMENT_SPEC
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_task import HELPER, ModuleNode, run
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import untagged


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            node = ModuleNode(lambda args: self._execute_module(module_name=HELPER, module_args=args, task_vars=task_vars))
            outcome = run(untagged(params), node, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        except ContainerdConfigError as exc:
            result.update(exc.extra)
            result.update(failed=True, msg=exc.msg, changed=False)
            return result
        except ImportError as exc:  # pragma: no cover - tomlkit vanished between import and use
            raise AnsibleActionFail("tomlkit is required on the controller: %s" % exc) from exc
        warnings = outcome.pop("warnings", [])
        result.update(outcome)
        if warnings:
            result["warnings"] = warnings
        return result
