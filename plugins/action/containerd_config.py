# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.containerd_config: the TOML merge runs on the controller.

The managed node only needs python3 (for the builtin stat/slurp/copy modules) and containerd:
the file is read with stat + slurp, containerd runs on the node for ``--version``,
``config default``, ``config migrate`` and ``config dump`` (the validation, also in check mode),
and the result is installed with the builtin copy module (atomic, in the file's own directory,
owner and mode kept, optional backup). Temporary files live in Ansible's remote tmp dir and are
removed at the end.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config import (
    ContainerdConfigError,
    NodeOps,
    argument_spec,
    run,
)

C_ENV = ["LANG=C", "LC_ALL=C", "LANGUAGE=C"]


class RemoteOps(NodeOps):
    """Node operations over the task's connection."""

    def __init__(self, action, task_vars):
        self.action = action
        self.task_vars = task_vars
        self.counter = 0

    def _module(self, name, args):
        return self.action._execute_module(module_name=name, module_args=args, task_vars=self.task_vars, wrap_async=False)

    def read(self, path):
        stat = self.action._execute_remote_stat(path, all_vars=self.task_vars, follow=True, checksum=False)
        if not stat.get("exists"):
            return False, None
        if stat.get("isdir"):
            raise ContainerdConfigError("%s is a directory; path must name the config file" % path)
        slurped = self._module("ansible.legacy.slurp", {"src": path})
        if slurped.get("failed"):
            raise ContainerdConfigError("cannot read %s on the node: %s" % (path, slurped.get("msg")))
        data = base64.b64decode(slurped["content"])
        try:
            return True, data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContainerdConfigError("%s is not UTF-8 text (%s); TOML files must be UTF-8" % (path, exc)) from None

    def run(self, argv):
        # Through the command module, not _low_level_execute_command: over ssh the latter gets a tty,
        # which mixes containerd's stderr warnings into the TOML it prints on stdout.
        # Every command run here only reads (version, config default/migrate/dump), so it also runs in
        # check mode, where the command module would otherwise skip it.
        task = self.action._task
        saved_check_mode = task.check_mode
        task.check_mode = False
        try:
            res = self._module("ansible.legacy.command", {"argv": ["env"] + C_ENV + list(argv), "_uses_shell": False})
        finally:
            task.check_mode = saved_check_mode
        rc = res.get("rc")
        if rc is None:  # the command could not be started at all
            return 127, "", res.get("msg", "")
        return rc, res.get("stdout", ""), res.get("stderr", "")

    def _tmpdir(self):
        shell = self.action._connection._shell
        if not shell.tmpdir:
            self.action._make_tmp_path()
        return shell.tmpdir

    def write_temp(self, text):
        self.counter += 1
        remote = self.action._connection._shell.join_path(self._tmpdir(), "containerd-config-%d.toml" % self.counter)
        self.action._transfer_data(remote, text)
        self.action._fixup_perms2([remote], execute=False)
        return remote

    def install(self, temp_path, text, path, existed, backup):
        args = {
            "src": temp_path,
            "dest": path,
            "backup": backup,
            "follow": True,
            "checksum": hashlib.sha1(text.encode("utf-8")).hexdigest(),
            "_original_basename": "config.toml",
        }
        if not existed:
            args["mode"] = "0644"
            # A fresh node may have no /etc/containerd yet (tarball installs, containerd not installed yet).
            parent = posixpath.dirname(path) or "."
            # No mode: an existing directory keeps the one its owner chose.
            made = self._module("ansible.legacy.file", {"path": parent, "state": "directory"})
            if made.get("failed"):
                raise ContainerdConfigError("cannot create the directory %s: %s" % (parent, made.get("msg")), module_result=made)
        copied = self._module("ansible.legacy.copy", args)
        if copied.get("failed"):
            raise ContainerdConfigError("installing %s failed: %s" % (path, copied.get("msg")), module_result=copied)
        return copied.get("backup_file")

    def cleanup(self):
        if self.action._connection._shell.tmpdir:
            self.action._remove_tmp_path(self.action._connection._shell.tmpdir)


def _plain(value):
    """Task arguments (possibly tagged str/dict subclasses) -> plain Python data for tomlkit."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class ActionModule(ActionBase):

    TRANSFERS_FILES = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        spec = argument_spec()
        spec["path"] = dict(spec["path"], type="str")  # expanded on the node, not on the controller
        _validation, params = self.validate_argument_spec(argument_spec=spec)
        params = _plain(params)
        params["path"] = self._remote_expand_user(params["path"])

        ops = RemoteOps(self, task_vars)
        try:
            outcome = run(params, ops, check_mode=bool(self._task.check_mode))
        except ContainerdConfigError as exc:
            result.update(exc.extra)
            result.update(failed=True, msg=exc.msg, changed=False)
            return result
        except ImportError as exc:  # pragma: no cover - tomlkit vanished between import and use
            raise AnsibleActionFail("tomlkit is required on the controller: %s" % exc) from exc
        finally:
            ops.cleanup()
        warnings = outcome.pop("warnings", [])
        result.update(outcome)
        if warnings:
            result["warnings"] = warnings
        return result
