# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.etcd_certs: with ``src``, read the PKI directory on the controller.

``src`` is a directory ``kubeforge.cluster.cfssl_cert`` keeps on the controller: ``<src>/ca/cert.pem`` and
``<src>/<name>/cert.pem`` + ``key.pem``. Each entry of ``certificates`` names its source with ``src``; the action
reads the files and passes their content to the module (whose ``key`` option is no_log), so keys reach only the
node the task runs for and never appear in output. Without ``src`` the content is given in the task.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def _read(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise AnsibleActionFail("etcd_certs: cannot read %s (%s) on the controller: %s" % (what, path, exc.strerror)) from None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is not None:
            if not isinstance(src, str) or not os.path.isabs(src):
                raise AnsibleActionFail("src: must be the absolute path of a PKI directory on the controller, got %r" % (src,))
            if not isinstance(args.get("certificates"), list):
                raise AnsibleActionFail("certificates: must be a list of {name, src}")
            for index, item in enumerate(args["certificates"]):
                if not isinstance(item, dict) or not isinstance(item.get("src"), str) or "/" in item["src"] or item["src"] in ("", ".", ".."):
                    raise AnsibleActionFail("certificates[%d]: with src, each entry needs name and src (a certificate name "
                                            "under %s)" % (index, src))
            args["ca"] = _read(os.path.join(src, "ca", "cert.pem"), "the CA certificate")
            certificates = []
            for item in args["certificates"]:
                certificates.append({"name": item.get("name"),
                                     "cert": _read(os.path.join(src, item["src"], "cert.pem"), "certificate " + item["src"]),
                                     "key": _read(os.path.join(src, item["src"], "key.pem"), "key " + item["src"])})
            args["certificates"] = certificates
        result.update(self._execute_module(module_name="kubeforge.cluster.etcd_certs", module_args=args, task_vars=task_vars))
        return result
