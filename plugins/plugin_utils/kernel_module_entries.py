# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a list of kernel module names into kubeforge.cluster.kernel_modules entries with a shared reason."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def kernel_module_entries(names, reason="", required=True):
    """``[{"name": n, "required": required, "reason": reason}]``; names must be strings."""
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise AnsibleFilterError("kernel_module_entries needs a list of module names, got %r" % (names,))
    entry = {"required": bool(required)}
    if reason:
        entry["reason"] = reason
    return [dict(entry, name=name) for name in names]
