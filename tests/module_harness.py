# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process: exit_json/fail_json raise instead of exiting.

The ``module_exits`` fixture (tests/unit/plugins/modules/conftest.py) installs it for every module test.
"""

from __future__ import annotations

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


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


def call_main(main, args, check_mode=False, diff=False):
    """Run a module's ``main()`` with ``args``; returns (ExitJson or FailJson, result)."""
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args):
        try:
            main()
        except (ExitJson, FailJson) as exc:
            return type(exc), exc.args[0]
    raise AssertionError("main() returned without exit_json or fail_json")


def exits(main, args, **kwargs):
    """``call_main`` that must end in exit_json; returns the result."""
    kind, result = call_main(main, args, **kwargs)
    assert kind is ExitJson, result
    return result


def fails(main, args, **kwargs):
    """``call_main`` that must end in fail_json; returns the result (with msg)."""
    kind, result = call_main(main, args, **kwargs)
    assert kind is FailJson, result
    return result
