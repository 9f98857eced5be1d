# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd_config without ssh: the controller's ``run()`` and the real node-side helper module in one process.

``local_node()`` is the ``ModuleNode`` the action plugin uses, with ``_execute_module`` replaced by a call of the
helper module's ``main()`` here (real argument spec, real files, real containerd or a stand-in script). Only the
transport differs from production. ``FAKE_CONTAINERD`` writes a small stand-in binary for unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from module_harness import ExitJson, FailJson, call_main, patch_module_exits
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_task import ModuleNode, run
from ansible_collections.kubeforge.cluster.plugins.modules import containerd_config_node

FIXTURES = Path(__file__).resolve().parent / "integration" / "fixtures" / "containerd"

# A stand-in for containerd (POSIX sh, so that it costs next to nothing): --version, config default (a
# file), config dump (echoes the candidate), config migrate. Steered with files next to it (dump-rc, ...).
FAKE_CONTAINERD = r'''#!/bin/sh
here=$(dirname "$0")
if [ "$1" = "--version" ]; then
    if [ -f "$here/version-rc" ]; then echo "containerd: broken" >&2; exit "$(cat "$here/version-rc")"; fi
    if [ -f "$here/version" ]; then cat "$here/version"; echo; else echo "containerd github.com/containerd/containerd/v2 2.1.9+unknown"; fi
elif [ "$1 $2" = "config default" ]; then
    cat "$here/default"
elif [ "$1" = "--config" ] && [ "$3 $4" = "config dump" ]; then
    if [ -f "$here/dump-stderr" ]; then cat "$here/dump-stderr" >&2; fi
    if [ -f "$here/dump-rc" ]; then exit "$(cat "$here/dump-rc")"; fi
    if [ -f "$here/dump-output" ]; then cat "$here/dump-output"; else cat "$2"; fi
elif [ "$1" = "--config" ] && [ "$3 $4" = "config migrate" ]; then
    if [ -f "$here/migrate-output" ]; then cat "$here/migrate-output"; else cat "$2"; fi
else
    echo "unexpected: $*" >&2; exit 2
fi
'''


def fake_containerd(directory, version=None, default=None, **settings):
    """A stand-in containerd in ``directory``; ``settings`` become files it reads (dump-rc, dump-output, ...)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "containerd"
    binary.write_text(FAKE_CONTAINERD)
    binary.chmod(0o755)
    (directory / "default").write_text(default if default is not None else (FIXTURES / "v3-default-2.1.toml").read_text())
    if version is not None:
        (directory / "version").write_text(version)
    for name, value in settings.items():
        (directory / name.replace("_", "-")).write_text(str(value))
    return str(binary)


class LocalNode(ModuleNode):
    """``ModuleNode`` running the helper module's ``main()`` in this process; records every call and its arguments."""

    def __init__(self, check_mode=False):
        super().__init__(self._execute)
        self.check_mode = check_mode
        self.log = []

    def _execute(self, args):
        self.log.append(dict(args))
        with pytest.MonkeyPatch.context() as monkeypatch:
            patch_module_exits(monkeypatch)
            kind, result = call_main(containerd_config_node.main, args, check_mode=self.check_mode)
        if kind is FailJson:
            result["failed"] = True
        assert kind in (ExitJson, FailJson)
        return result


def run_local(check_mode=False, diff=False, node=None, **params):
    """(result, node) of one task against this machine; ContainerdConfigError propagates."""
    node = node or LocalNode(check_mode=check_mode)
    return run(params, node, check_mode=check_mode, diff=diff), node
