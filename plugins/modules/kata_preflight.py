#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kata_preflight
short_description: Check that a host can run Kata Containers, listing everything that is missing
version_added: 0.2.0
description:
  - Kata Containers runs each pod in a lightweight virtual machine. This module checks, in order, what the host needs
    for that and reports every finding, not only the first.
  - The CPU offers hardware virtualization (C(vmx) for Intel VT-x, C(svm) for AMD-V in C(/proc/cpuinfo); on other
    architectures C(/dev/kvm) decides). Inside a virtual machine (cpuinfo flag C(hypervisor)) the message says that
    nested virtualization must be enabled on its host.
  - C(/dev/kvm) exists, is the KVM character device and opens for reading and writing.
  - The kernel modules in O(modules) (C(vhost_vsock), C(vhost_net)) are loaded, built in or loadable, decided the way
    M(kubeforge.cluster.kernel_modules) decides (it loads and persists them afterwards).
  - C(kata-runtime check --no-network-checks) passes, when O(kata_runtime) is installed.
  - Whether KVM here allows nested guests is reported for information.
  - Fails with the list of problems unless O(allow_unsupported) is true; then the same list is a warning and
    RV(supported) is false (for installing now and moving to capable hardware later).
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
options:
  modules:
    description: Kernel modules Kata needs.
    type: list
    elements: str
    default: [vhost_vsock, vhost_net]
  kata_runtime:
    description: The C(kata-runtime) binary whose C(check) runs when it exists.
    type: path
    default: /opt/kata/bin/kata-runtime
  allow_unsupported:
    description: Report the problems as a warning instead of failing.
    type: bool
    default: false
notes:
  - C(kata-runtime check) may load kernel modules itself when run as root; nothing else is changed.
"""

EXAMPLES = r"""
- name: Check that the host can run Kata Containers
  kubeforge.cluster.kata_preflight:
  register: kata_host

- name: Install Kata on hardware that cannot run it yet (moved to bare metal later)
  kubeforge.cluster.kata_preflight:
    allow_unsupported: true
"""

RETURN = r"""
supported:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: false
problems:
  description: One line per failed check, naming what is missing and how to get it.
  returned: always
  type: list
  elements: str
  sample: ["/dev/kvm: /dev/kvm does not exist: the kvm_intel or kvm_amd module is not loaded (or this is a container without the device)"]
checks:
  description: Every check in order, with C(ok) true, false or null (not applicable, informational).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "cpu virtualization", "ok": true, "detail": "Intel(R) Xeon(R) offers vmx"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._kata_preflight import Host, preflight
from ansible_collections.kubeforge.cluster.plugins.module_utils._kernel_modules import module_name, normalize
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, require_list

# The host tree read (unit tests point it at a fake one).
ROOT = "/"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            modules=dict(type="list", elements="str", default=["vhost_vsock", "vhost_net"]),
            kata_runtime=dict(type="path", default="/opt/kata/bin/kata-runtime"),
            allow_unsupported=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        modules = [normalize(name) for name in require_list("modules", module.params["modules"], item=module_name)]
        kata_runtime = absolute_path("kata_runtime", module.params["kata_runtime"])
    except InputError as exc:
        module.fail_json(msg=str(exc))

    def run(argv):
        return module.run_command(argv, environ_update={"LANGUAGE": "C", "LC_ALL": "C"})

    host = Host(root=ROOT, run=run, modprobe=module.get_bin_path("modprobe", opt_dirs=["/usr/sbin", "/sbin"]))
    checks, problems = preflight(host, modules, kata_runtime)
    result = dict(changed=False, supported=not problems, problems=problems, checks=[check.as_dict() for check in checks])
    if problems:
        listing = "; ".join("(%d) %s" % (index + 1, problem) for index, problem in enumerate(problems))
        if not module.params["allow_unsupported"]:
            module.fail_json(msg="This host cannot run Kata Containers: %s. Fix these, or set allow_unsupported to install "
                                 "anyway (a warning then)." % listing, **result)
        module.warn("This host cannot run Kata Containers yet; installed anyway because allow_unsupported is set: %s" % listing)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
