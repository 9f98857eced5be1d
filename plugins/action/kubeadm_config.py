# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.kubeadm_config: render and validate on the controller, write on the node.

Rendering and the schema validation run here (``_kubeadm_config``; the schemas are data files of the
collection). The node is asked only for what only it knows or must do: whether the kernel has the IPVS
modules (``kernel_modules`` probing in check mode), the checksum of the current file (stat), the old text
for the diff (slurp, only when the file changes), ``kubeadm config validate`` of the new text when kubeadm
is installed (also in check mode: it only reads), and the atomic 0600 write (copy). A converged node costs
one stat per file. Bootstrap tokens and certificate keys are masked in the diff and in every message.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath

import yaml
from ansible.plugins.action import ActionBase
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_config import render
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_settings import SettingsError, argument_spec
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import mask_text, untagged

HEADER = "# Rendered by kubeforge.cluster.kubeadm_config (Kubernetes %s, %s); changes here are overwritten.\n"
C_ENV = ["LANG=C", "LC_ALL=C", "LANGUAGE=C"]


def render_text(rendered, documents, version):
    """The file text: a header and the documents as YAML, in a fixed order (so the checksum decides ``changed``)."""
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, explicit_start=False)
    return HEADER % (version, rendered["kubeadm_api"]) + body


class ActionModule(ActionBase):

    TRANSFERS_FILES = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=argument_spec())
        params = untagged(params)
        secrets = [s for s in (params.get("bootstrap_token"), params.get("certificate_key")) if s]
        try:
            rendered = render(params)
        except SettingsError as exc:
            result.update(failed=True, changed=False, problems=["%s: %s" % p for p in exc.problems],
                          msg="The kubeadm configuration cannot be rendered: " + "; ".join("%s: %s" % p for p in exc.problems))
            return result
        result.update(changed=False, minor=rendered["minor"], kubeadm_api=rendered["kubeadm_api"], endpoint=rendered["endpoint"],
                      pending=rendered["pending"], files={})
        if rendered["warnings"]:
            result["warnings"] = list(rendered["warnings"])
        try:
            if rendered["kernel_modules"]:
                # only probes: loading and persisting modules is node_prep's job
                probe = self._node_module("kubeforge.cluster.kernel_modules", task_vars, check_mode=True,
                                          modules=rendered["kernel_modules"], persist=False)
                if probe.get("failed"):
                    result.update(failed=True, msg=probe.get("msg"), kernel_modules=probe.get("status"))
                    return result
            diffs = []
            version = params["kubernetes_version"].lstrip("v")
            for name, documents in rendered["files"].items():
                text = render_text(rendered, documents, version)
                entry, diff = self._install(posixpath.join(params["config_dir"], name), text, params, secrets, task_vars)
                result["files"][name] = dict(entry, kinds=[d["kind"] for d in documents])
                if entry["changed"]:
                    result["changed"] = True
                    if diff:
                        diffs.append(diff)
            if diffs and self._task.diff:
                result["diff"] = diffs
        except _NodeError as exc:
            result.update(failed=True, msg=mask_text(str(exc), secrets), **exc.extra)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # --- node operations ------------------------------------------------------------------------
    def _node_module(self, name, task_vars, check_mode=None, **args):
        """Run a module on the node; ``check_mode`` True/False overrides the task's (read-only commands run for real)."""
        saved = self._task.check_mode
        if check_mode is not None:
            self._task.check_mode = check_mode
        try:
            return self._execute_module(module_name=name, module_args=args, task_vars=task_vars, wrap_async=False)
        finally:
            self._task.check_mode = saved

    def _install(self, path, text, params, secrets, task_vars):
        """Compare, validate with kubeadm, write (0600). Returns (file entry, diff or None)."""
        data = text.encode("utf-8")
        wanted = hashlib.sha1(data).hexdigest()
        stat = self._execute_remote_stat(path, all_vars=task_vars, follow=False, checksum=True)
        if stat.get("exists") and stat.get("isdir"):
            raise _NodeError("%s is a directory; remove it so the kubeadm configuration file can be written there" % path)
        same = stat.get("exists") and stat.get("checksum") == wanted and stat.get("mode") == "0600"
        entry = {"path": path, "changed": not same, "validated_by_kubeadm": None}
        if same:
            return entry, None
        before = ""
        if stat.get("exists"):
            slurped = self._node_module("ansible.legacy.slurp", task_vars, src=path)
            if slurped.get("failed"):
                raise _NodeError("cannot read %s: %s" % (path, slurped.get("msg")))
            before = base64.b64decode(slurped["content"]).decode("utf-8", errors="replace")
        staged = self._stage(text)
        entry["validated_by_kubeadm"] = self._kubeadm_validate(staged, path, params, secrets, task_vars)
        if not self._task.check_mode:
            directory = posixpath.dirname(path)
            # the parents (/etc/kubernetes) keep the default mode; only the configuration directory is private
            for target, mode in ((posixpath.dirname(directory), None), (directory, "0700")):
                args = dict(path=target, state="directory", mode=mode) if mode else dict(path=target, state="directory")
                made = self._node_module("ansible.legacy.file", task_vars, **args)
                if made.get("failed"):
                    raise _NodeError("cannot create %s: %s" % (target, made.get("msg")))
            copied = self._node_module("ansible.legacy.copy", task_vars, src=staged, dest=path, mode="0600", checksum=wanted,
                                       _original_basename=posixpath.basename(path))
            if copied.get("failed"):
                raise _NodeError("writing %s failed: %s" % (path, copied.get("msg")))
        diff = {"before_header": path, "after_header": path, "before": mask_text(before, secrets), "after": mask_text(text, secrets)}
        return entry, diff

    def _stage(self, text):
        if not self._connection._shell.tmpdir:
            self._make_tmp_path()
        staged = self._connection._shell.join_path(self._connection._shell.tmpdir, "kubeadm-config.yaml")
        self._transfer_data(staged, text)
        self._fixup_perms2([staged], execute=False)
        return staged

    def _kubeadm_validate(self, staged, path, params, secrets, task_vars):
        """True when ``kubeadm config validate`` accepted the text, None when kubeadm is not installed."""
        argv = ["env"] + C_ENV + [params["kubeadm_binary"], "config", "validate", "--config", staged]
        res = self._node_module("ansible.legacy.command", task_vars, check_mode=False, argv=argv, _uses_shell=False)
        rc = res.get("rc")
        if rc == 127 or rc is None and "No such file" in str(res.get("msg")):
            return None
        if rc != 0:
            output = " ".join(((res.get("stderr") or "") + " " + (res.get("stdout") or "")).split())
            raise _NodeError("kubeadm config validate refused the configuration for %s (rc=%s): %s" % (path, rc, output),
                             rc=rc, stdout=mask_text(res.get("stdout") or "", secrets), stderr=mask_text(res.get("stderr") or "", secrets))
        return True


class _NodeError(Exception):
    def __init__(self, message, **extra):
        Exception.__init__(self, message)
        self.extra = extra
