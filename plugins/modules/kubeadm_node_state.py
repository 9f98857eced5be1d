#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeadm_node_state
short_description: Report whether a node is part of a kubeadm cluster and whether its API server answers
version_added: 0.3.0
description:
  - Read-only. Reports whether C(/etc/kubernetes/kubelet.conf) exists (the node has run C(kubeadm init) or C(join)),
    whether C(/etc/kubernetes/admin.conf) exists and, with it, whether the API server answers
    C(kubectl get --raw=/readyz) - so that the C(kubeforge.cluster.kubeadm) role decides from the node's state, never
    from a marker file alone, whether to run C(kubeadm init), which nodes still have to join and which node to talk
    to the API through.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
options:
  addons_dir:
    description: A directory of manifests to list in RV(addons) (absolute path; empty - none).
    type: path
    default: ""
"""

EXAMPLES = r"""
- name: Find out whether the node is joined and its API server answers
  kubeforge.cluster.kubeadm_node_state:
    addons_dir: /etc/kubernetes/addons
  register: kubeadm_node

- name: Show it
  ansible.builtin.debug:
    msg: "joined={{ kubeadm_node.joined }} live={{ kubeadm_node.apiserver_live }}"
"""

RETURN = r"""
joined:
  description: C(/etc/kubernetes/kubelet.conf) exists.
  returned: always
  type: bool
admin_conf:
  description: C(/etc/kubernetes/admin.conf) exists.
  returned: always
  type: bool
control_plane:
  description: The kube-apiserver static pod manifest exists.
  returned: always
  type: bool
addons:
  description: The C(.yaml), C(.yml) and C(.json) files in O(addons_dir), sorted (paths as seen from C(/)).
  returned: always
  type: list
  elements: str
ca_cert:
  description: C(/etc/kubernetes/pki/ca.crt) exists.
  returned: always
  type: bool
apiserver_live:
  description: C(kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw=/readyz) answered C(ok).
  returned: always
  type: bool
apiserver_error:
  description: Why the API server is not live (no admin.conf, kubectl missing, or kubectl's message); empty when it is.
  returned: always
  type: str
  sample: "The connection to the server 127.0.0.1:6443 was refused"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_node_state import inspect

C_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def main():
    module = AnsibleModule(argument_spec=dict(addons_dir=dict(type="path", default="")), supports_check_mode=True)
    if module.params["addons_dir"] and not module.params["addons_dir"].startswith("/"):
        module.fail_json(msg="addons_dir: %r is not an absolute path" % module.params["addons_dir"])

    def run(argv):
        return module.run_command(argv, environ_update=C_ENV)

    kubectl = module.get_bin_path("kubectl", opt_dirs=["/usr/local/bin", "/usr/bin"])
    module.exit_json(changed=False, **inspect("/", run, kubectl, module.params["addons_dir"]))


if __name__ == "__main__":
    main()
