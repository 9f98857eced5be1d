# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nerdctl.toml from the image_tools variables: containerd's address and namespace, containerd's hosts.toml
directory, the CNI directory; extra keys merged; refused inputs named."""

from __future__ import annotations

import tomllib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.nerdctl_config import nerdctl_config


def variables(**overrides):
    base = {
        "image_tools_containerd_address": "/run/containerd/containerd.sock",
        "image_tools_namespace": "k8s.io",
        "image_tools_registry_config_path": "/etc/containerd/certs.d",
        "image_tools_nerdctl_cni_bin_dir": "/opt/cni/bin",
        "image_tools_nerdctl_config_extra": {},
    }
    base.update(overrides)
    return base


def test_defaults():
    text = nerdctl_config(variables())
    assert text.startswith("# Managed by kubeforge.cluster.image_tools")
    assert tomllib.loads(text) == {"address": "unix:///run/containerd/containerd.sock", "namespace": "k8s.io",
                                   "hosts_dir": ["/etc/containerd/certs.d"], "cni_path": "/opt/cni/bin"}


def test_extra_keys_are_added():
    data = tomllib.loads(nerdctl_config(variables(image_tools_nerdctl_config_extra={"snapshotter": "overlayfs", "experimental": False})))
    assert data["snapshotter"] == "overlayfs" and data["experimental"] is False and data["namespace"] == "k8s.io"


@pytest.mark.parametrize("overrides, message", [
    ({"image_tools_nerdctl_config_extra": {"namespace": "default"}},
     "image_tools_nerdctl_config_extra: sets namespace, which the role writes from image_tools_namespace: set that variable instead"),
    ({"image_tools_nerdctl_config_extra": {"hosts_dir": ["/etc/docker/certs.d"]}},
     "image_tools_nerdctl_config_extra: sets hosts_dir, which the role writes from image_tools_registry_config_path: set that "
     "variable instead"),
    ({"image_tools_registry_config_path": "certs.d"}, "image_tools_registry_config_path: must be an absolute path (starting with /), got 'certs.d'"),
    ({"image_tools_containerd_address": "unix:///run/containerd/containerd.sock"},
     "image_tools_containerd_address: must be an absolute path (starting with /), got 'unix:///run/containerd/containerd.sock'"),
    ({"image_tools_namespace": "a b"}, "image_tools_namespace: containerd namespace 'a b' must not contain whitespace"),
    ({"image_tools_nerdctl_config_extra": {"dns": [None]}},
     "image_tools_nerdctl_config_extra.dns[0]: must be a string, number, bool, list or dict, got null"),
])
def test_bad_input_names_the_variable(overrides, message):
    with pytest.raises(AnsibleFilterError) as caught:
        nerdctl_config(variables(**overrides))
    assert str(caught.value) == message
