# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process: exit_json/fail_json raise instead of exiting.

The ``module_exits`` fixture (tests/unit/plugins/modules/conftest.py) installs it for every module test.
"""

from __future__ import annotations

from ansible.module_utils import basic


class ExitJson(Exception):
    """main() called exit_json; args[0] is the result."""


class FailJson(Exception):
    """main() called fail_json; args[0] is the result, with msg."""


def patch_module_exits(monkeypatch):
    """Make AnsibleModule's exits raise; warnings are returned in the result like Ansible does."""
    warnings = []

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        kwargs["warnings"] = list(warnings)
        raise ExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    return warnings
