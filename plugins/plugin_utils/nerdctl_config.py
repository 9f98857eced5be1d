# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nerdctl.toml for the image_tools role: containerd's address and namespace, containerd's registry host directory
(so nerdctl pulls and pushes through the same mirrors and CAs as the kubelet) and the CNI plugin directory.

The input is a dict keyed by the role's variable names; every error names the variable to fix. Settings the role
writes cannot be overridden through ``image_tools_nerdctl_config_extra`` (set their variable instead); any other
nerdctl.toml key (``snapshotter``, ``experimental``, ``insecure_registry``, ...) can be added there.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    plain_data,
    require_dict,
    safe_name,
)

try:
    import tomlkit
except ImportError:  # pragma: no cover - tomlkit is in requirements.txt
    tomlkit = None

MARKER = "# Managed by kubeforge.cluster.image_tools: edits are overwritten (image_tools_nerdctl_* variables)."
_MANAGED = {
    "address": "image_tools_containerd_address",
    "namespace": "image_tools_namespace",
    "hosts_dir": "image_tools_registry_config_path",
    "cni_path": "image_tools_nerdctl_cni_bin_dir",
}


def nerdctl_config(variables):
    """The text of nerdctl.toml from the image_tools variables in ``variables`` (a dict keyed by variable name)."""
    if tomlkit is None:  # pragma: no cover
        raise AnsibleFilterError("nerdctl_config needs the Python library tomlkit on the controller (requirements.txt)")
    try:
        require_dict("nerdctl_config input", variables)
        config = {
            "address": "unix://" + absolute_path("image_tools_containerd_address", variables["image_tools_containerd_address"]),
            "namespace": safe_name("image_tools_namespace", variables["image_tools_namespace"], what="containerd namespace"),
            # containerd's hosts.toml directory: the mirrors, CAs and credentials of containerd_registries
            "hosts_dir": [absolute_path("image_tools_registry_config_path", variables["image_tools_registry_config_path"])],
            "cni_path": absolute_path("image_tools_nerdctl_cni_bin_dir", variables["image_tools_nerdctl_cni_bin_dir"]),
        }
        extra = plain_data("image_tools_nerdctl_config_extra", variables.get("image_tools_nerdctl_config_extra") or {})
        require_dict("image_tools_nerdctl_config_extra", extra)
        for key, variable in _MANAGED.items():
            if key in extra:
                raise InputError("image_tools_nerdctl_config_extra", "sets %s, which the role writes from %s: set that "
                                 "variable instead" % (key, variable))
        config.update(extra)
    except KeyError as exc:
        raise AnsibleFilterError("nerdctl_config: the input lacks %s" % exc) from None
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return MARKER + "\n\n" + tomlkit.dumps(config)
