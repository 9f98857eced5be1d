#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kernel_modules
short_description: Make sure kernel modules are present, load the loadable ones and persist them for boot
version_added: 0.1.0
description:
  - For each requested kernel module, decides from the host whether it is C(loaded) (listed in C(/proc/modules)),
    C(builtin) (compiled into the kernel), C(loadable) (the kernel supports modules and C(modprobe -n -v) or
    C(modules.dep) finds it) or C(missing).
  - A module counts as built in when C(/lib/modules/RELEASE/modules.builtin) lists it, when C(/sys/module/NAME) exists
    without C(initstate) while C(/proc/modules) does not list it, when the kernel config (C(/proc/config.gz) or
    C(/boot/config-RELEASE)) builds it with C(=y), or when its feature is visible (for example
    C(/proc/sys/net/bridge/bridge-nf-call-iptables) for C(br_netfilter), C(overlay) in C(/proc/filesystems)).
    Built-ins without parameters, such as C(br_netfilter), have no C(/sys/module) entry, hence the last two checks.
  - Works on a kernel without module support (no C(/proc/modules)); nothing is loadable there and built-ins still count.
  - Loads the loadable modules with C(modprobe -- NAME PARAMS...) (not in check mode); nothing from O(modules) can
    reach C(modprobe) as one of its options (see the collection's C(docs/SECURITY.md)).
  - Persists the modules that must be loaded at boot to C(/etc/modules-load.d/PERSIST_FILE), and the C(params) of O(modules)
    as C(options) lines to C(/etc/modprobe.d/PERSIST_FILE). Built-in modules need no entry and are not listed; missing
    optional modules are not listed either, because C(systemd-modules-load) would fail on them. Both files are owned by this
    module and rewritten (atomically) from the request when their data differs; a file with nothing to list is removed.
  - Fails, before changing anything, when a module marked required is missing or cannot be loaded; the message names the
    module, the kernel release, why it is needed (the C(reason) of O(modules)) and the fix. Optional modules only produce a warning.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Probes with C(modprobe -n -v) and reports what would be loaded and written without loading or writing.
  diff_mode:
    support: full
    details:
      - Shows the persist files before and after.
options:
  modules:
    description:
      - Modules to ensure. Each item is a module name, or a dict with the keys below.
      - C(name) (str, required) the module name, for example C(br_netfilter), of 1 to 55 letters, digits, C(_) and C(-),
        not starting with C(-). Names compare with C(-) and C(_) as equal, as the kernel does.
      - C(required) (bool, default V(true)) fail when the module is missing or fails to load; when false, only warn.
      - C(params) (str C(name=value name2=value2), or a dict of names to values) module parameters passed to C(modprobe)
        and persisted as an C(options) line. Each word is C(name=value), the name made of C([A-Za-z0-9_]) and not
        starting with a digit, the value printable ASCII without spaces, quotes or backslashes (it may be empty or
        negative). In the dict form values are strings, integers, booleans (C(1)/C(0)) or lists (joined with C(,),
        the kernel's array syntax). A module that is already loaded is not reloaded to change its parameters.
      - C(reason) (str) why the module is needed, quoted in the failure message, for example C(kube-proxy ipvs mode).
      - Anything else (unknown keys, a list as a name, a float as a parameter value) is refused, not converted.
      - The option is a list; it is declared C(raw) so that a scalar (V(false), a number, a comma-separated string)
        is refused instead of being turned into a list of one made-up module name.
    type: raw
    required: true
  persist:
    description: Write the boot-time files under C(/etc/modules-load.d) and C(/etc/modprobe.d). When false, no file is touched.
    type: bool
    default: true
  persist_file:
    description:
      - File name (no directory) used in C(/etc/modules-load.d) and C(/etc/modprobe.d). It must end with C(.conf),
        the only names C(systemd-modules-load) and C(modprobe) read there.
      - When the file is a symlink to a regular file, that file is replaced and the link stays; a link to
        C(/dev/null), a directory or nothing is refused. A file another writer changed while the task ran is not
        overwritten (the task fails).
    type: str
    default: kubeforge.conf
notes:
  - Kernel modules live in the host kernel; in a container the module can only report what the host kernel provides.
seealso:
  - name: modules-load.d(5)
    description: Configure kernel modules to load at boot.
    link: https://www.freedesktop.org/software/systemd/man/latest/modules-load.d.html
"""

EXAMPLES = r"""
- name: Ensure the modules a Kubernetes node needs
  kubeforge.cluster.kernel_modules:
    modules:
      - overlay
      - br_netfilter
      - name: ip_vs
        required: "{{ kube_proxy_mode == 'ipvs' }}"
        reason: kube-proxy ipvs mode
    persist_file: kubeforge.conf
  register: kernel_modules

- name: Show the status of br_netfilter (loaded, builtin, loadable or missing)
  ansible.builtin.debug:
    msg: "{{ kernel_modules.status.br_netfilter }}"

- name: Load nf_conntrack with a parameter, without persisting it
  kubeforge.cluster.kernel_modules:
    modules:
      - name: nf_conntrack
        params: hashsize=131072
    persist: false
"""

RETURN = r"""
kernel_release:
  description: Release of the running kernel.
  returned: always
  type: str
  sample: 6.1.0-26-amd64
module_support:
  description: Whether the kernel supports loadable modules (C(/proc/modules) exists).
  returned: always
  type: bool
  sample: true
status:
  description:
    - Status of each module as found before this task acted, by name (C(-) written as C(_)).
    - One of C(loaded), C(builtin), C(loadable), C(missing).
  returned: always
  type: dict
  sample: {"overlay": "loaded", "br_netfilter": "loadable", "ip_vs": "missing"}
modules:
  description: Per-module details, in request order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Module name.
      type: str
      sample: br_netfilter
    status:
      description: C(loaded), C(builtin), C(loadable) or C(missing), as found before acting.
      type: str
      sample: loadable
    evidence:
      description: What the status was decided from.
      type: str
      sample: CONFIG_BRIDGE_NETFILTER=y in /proc/config.gz
    required:
      description: Whether the module was required.
      type: bool
      sample: true
    params:
      description: Parameters used when loading and persisted.
      type: str
      sample: ""
    action:
      description: What the task did, C(none), C(loaded), C(would load) (check mode) or C(load failed) (optional module).
      type: str
      sample: loaded
    present:
      description: Whether the module is in the kernel after the task (loaded or built in).
      type: bool
      sample: true
persisted:
  description: Modules listed in the modules-load.d file (empty when O(persist=false) or nothing needs loading at boot).
  returned: always
  type: list
  elements: str
  sample: [overlay, br_netfilter]
failures:
  description: One message per required module that is missing or failed to load (the first one is also in C(msg)).
  returned: failure
  type: list
  elements: str
  sample: ["kernel module ip_vs (needed for kube-proxy ipvs mode) is missing on kernel 6.1.0-26-amd64: ..."]
files:
  description: Action taken (or that would be taken in check mode) on each persist file, C(write), C(remove) or C(none).
  returned: when O(persist=true) and no required module failed
  type: dict
  sample: {"/etc/modules-load.d/kubeforge.conf": "write", "/etc/modprobe.d/kubeforge.conf": "none"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError, remove_file, replace_file
from ansible_collections.kubeforge.cluster.plugins.module_utils._kernel_modules import (
    HostKernel,
    ensure,
    modprobe_argv,
    parse_requests,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, file_name

# The host's filesystem root. Unit tests point it at a fake tree.
ROOT = "/"
C_LOCALE = {"LANGUAGE": "C", "LC_ALL": "C"}


def argument_spec():
    return dict(
        modules=dict(type="raw", required=True),
        persist=dict(type="bool", default=True),
        persist_file=dict(type="str", default="kubeforge.conf"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    persist_file = module.params["persist_file"]
    try:
        file_name("persist_file", persist_file, suffixes=(".conf",))
        requests = parse_requests(module.params["modules"])
    except InputError as exc:
        module.fail_json(msg=str(exc))

    def run(argv):
        return module.run_command(argv, environ_update=C_LOCALE)

    kernel = HostKernel(root=ROOT, run=run)
    if kernel.module_support:
        kernel.modprobe = module.get_bin_path("modprobe", opt_dirs=["/sbin", "/usr/sbin"])

    def load(name, params):
        if kernel.modprobe is None:
            return 1, "", "modprobe not found on the node; install kmod"
        return module.run_command(modprobe_argv(kernel.modprobe, name, params.split()), environ_update=C_LOCALE)

    def write(path, text, expected):
        replace_file(module, path, text, mode=0o644, expected=expected)

    def remove(path, expected):
        remove_file(module, path, expected=expected)

    try:
        result = ensure(kernel, requests, module.params["persist"], persist_file, module.check_mode, load, write, remove)
    except ManagedFileError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.warnings:
        module.warn(warning)
    payload = dict(
        changed=result.changed,
        kernel_release=kernel.release,
        module_support=kernel.module_support,
        status={m["name"]: m["status"] for m in result.modules},
        modules=result.modules,
        persisted=result.persisted,
    )
    if result.failures:
        msg = result.failures[0]
        if len(result.failures) > 1:
            others = [m["name"] for m in result.modules if m["required"] and (m["status"] == "missing" or m["action"] == "load failed")][1:]
            msg += ". Also failed (required): %s; see modules[] for the evidence of each" % ", ".join(others)
        module.fail_json(msg=msg, failures=result.failures, **payload)
    if module.params["persist"]:
        payload["files"] = result.files
    if module._diff and result.diff:
        payload["diff"] = result.diff
    module.exit_json(**payload)


if __name__ == "__main__":
    main()
