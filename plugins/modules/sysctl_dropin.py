#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl_dropin
short_description: Manage a sysctl.d drop-in file and apply its values to the running kernel
version_added: 0.1.0
description:
  - Owns one file in C(/etc/sysctl.d) holding O(settings), written atomically when its data (keys and values, not
    comments or spacing) differs, and applies every value that differs from the running kernel by writing
    C(/proc/sys).
  - Keys listed in O(raise_only) are never lowered; when the running kernel already has a higher value, that value is kept
    and written to the file, so that it also survives a reboot (for example C(fs.inotify.max_user_watches) raised by
    another tool).
  - Fails with the key and the fix when C(/proc/sys) is read-only (an unprivileged container), when the kernel has no
    such key, or when the kernel rejects a value. Values are applied before the file is written, so a value the kernel
    rejects is never persisted; all or nothing, when one value fails the ones set before it are restored and the
    file is left as it was.
  - Warns when a file that C(systemd-sysctl) reads after this one sets one of the keys to another value (it would win at
    boot).
  - Every path below C(/proc/sys) is built from the parsed key and proven to stay there; the input policy is in
    C(docs/SECURITY.md) of the collection.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - Reports the file and runtime changes it would make. A key the kernel does not have yet (for example
        C(net.bridge.*) before C(br_netfilter) is loaded) is a warning in check mode and an error otherwise.
  diff_mode:
    support: full
  safe_file_operations:
    support: full
options:
  path:
    description:
      - The drop-in file, an absolute path whose name ends with C(.conf) (C(systemd-sysctl) ignores other names).
        Files in C(/etc/sysctl.d) are applied at boot in lexical order of their names.
      - When it is a symlink to a regular file, that file is read and replaced and the link stays; a link to
        C(/dev/null) (a masked drop-in), to a directory or to nothing is refused.
      - When another writer changes the file while the task runs, the task fails instead of overwriting that change.
    type: path
    default: /etc/sysctl.d/99-kubeforge.conf
  settings:
    description:
      - 'Keys and values, for example C({"net.ipv4.ip_forward": 1}).'
      - 'Keys in dotted form (C(net.ipv4.conf.eth0/100.forwarding), a C(/) standing for a dot inside a component, as
        sysctl prints it) or slash form (C(net/ipv4/conf/eth0.100/forwarding)): the first separator decides. Components
        are letters, digits and C(_.@:+-), never C(.) or C(..); globs are not supported.'
      - Values are strings, integers, booleans (C(1)/C(0)) or lists of strings and integers (space-separated words).
        Null, floats and dicts are refused rather than converted.
      - Required when O(state=present).
    type: dict
  raise_only:
    description: Keys of O(settings) (single integers) that are only ever raised, never lowered, in either spelling.
    type: list
    elements: str
    default: []
  apply:
    description: Also set the values in the running kernel (C(/proc/sys)).
    type: bool
    default: true
  state:
    description:
      - V(present) writes and applies O(settings).
      - V(absent) removes the file; running values are left as they are.
    type: str
    choices: [present, absent]
    default: present
  backup:
    description: Keep a time-stamped copy of the previous file when it is replaced or removed.
    type: bool
    default: false
notes:
  - In a container sharing the host kernel, keys that are not namespaced (C(vm.*), C(kernel.*), C(fs.*)) change the host.
seealso:
  - name: sysctl.d(5)
    description: Configure kernel parameters at boot.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Kernel settings for a Kubernetes node
  kubeforge.cluster.sysctl_dropin:
    path: /etc/sysctl.d/99-kubeforge.conf
    settings:
      net.ipv4.ip_forward: 1
      net.bridge.bridge-nf-call-iptables: 1
      fs.inotify.max_user_watches: 524288
    raise_only:
      - fs.inotify.max_user_watches

- name: Write the file only (the values apply at next boot)
  kubeforge.cluster.sysctl_dropin:
    path: /etc/sysctl.d/90-example.conf
    settings:
      vm.swappiness: 10
    apply: false

- name: Remove the drop-in
  kubeforge.cluster.sysctl_dropin:
    path: /etc/sysctl.d/90-example.conf
    state: absent
"""

RETURN = r"""
path:
  description: The drop-in file.
  returned: always
  type: str
  sample: /etc/sysctl.d/99-kubeforge.conf
settings:
  description: The values written to the file (after O(raise_only) kept higher running values), by dotted key.
  returned: when O(state=present)
  type: dict
  sample: {"net.ipv4.ip_forward": "1", "fs.inotify.max_user_watches": "1048576"}
kept:
  description: O(raise_only) keys whose higher running value was kept instead of the requested one.
  returned: when O(state=present)
  type: dict
  sample: {"fs.inotify.max_user_watches": {"wanted": "524288", "current": "1048576"}}
applied:
  description: Keys set in the running kernel (or that would be, in check mode), with the value before.
  returned: when O(state=present)
  type: dict
  sample: {"net.ipv4.ip_forward": {"before": "0", "after": "1"}}
file_changed:
  description: Whether the file was (or would be) written or removed.
  returned: always
  type: bool
  sample: true
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: when a backup was made
  type: str
  sample: /etc/sysctl.d/99-kubeforge.conf.12345.2026-11-23@14:00:00~
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import (
    ManagedFileError,
    read_managed,
    remove_file,
    replace_file,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._sysctl_dropin import (
    SysctlError,
    apply_all,
    boot_overrides,
    parse_conf,
    plan,
    read_runtime,
    render,
    restore,
    validate,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, file_name

# The running kernel's /proc/sys and the filesystem root searched for other sysctl.d files.
# Unit tests point them at fake trees.
PROC_SYS = "/proc/sys"
ROOT = "/"


def argument_spec():
    return dict(
        path=dict(type="path", default="/etc/sysctl.d/99-kubeforge.conf"),
        settings=dict(type="dict"),
        raise_only=dict(type="list", elements="str", default=[]),
        apply=dict(type="bool", default=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        backup=dict(type="bool", default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, required_if=[("state", "present", ["settings"])])
    params = module.params
    result = dict(changed=False, path=params["path"], file_changed=False)
    try:
        path = absolute_path("path", params["path"])
        file_name("path", os.path.basename(path), suffixes=(".conf",), what="drop-in file name")
        result["path"] = path
        if params["state"] == "present":
            wanted, components, raise_keys = validate(params["settings"], params["raise_only"])
        resolved, before_bytes, before_text = read_managed(path)
    except (InputError, ManagedFileError) as exc:
        module.fail_json(msg=str(exc), **result)
    diff = {"before_header": path, "after_header": path, "before": before_text or "", "after": ""}

    if params["state"] == "absent":
        if before_bytes is not None or os.path.islink(path):
            result.update(changed=True, file_changed=True)
            if not module.check_mode:
                try:
                    backup = remove_file(module, path, expected=before_bytes if before_bytes is not None else False,
                                         backup=params["backup"])
                except ManagedFileError as exc:
                    module.fail_json(msg=str(exc), **result)
                if backup:
                    result["backup_file"] = backup
        if module._diff and result["changed"]:
            result["diff"] = diff
        module.exit_json(**result)

    try:
        runtime = {key: read_runtime(PROC_SYS, components[key]) for key in wanted}
    except SysctlError as exc:
        module.fail_json(msg="%s (in %s)" % (exc, path), **result)
    effective, kept = plan(wanted, raise_keys, runtime)
    result.update(settings=effective, kept=kept, applied={})

    changes = {}
    if params["apply"]:
        for key, value in effective.items():
            current = runtime[key]
            if current is None and module.check_mode:
                module.warn("the running kernel has no sysctl %s (%s); in check mode this is only a warning, since an "
                            "earlier task may create it" % (key, path))
            if current != value:
                changes[key] = (current, value)
    if changes:
        result["changed"] = True
        if not module.check_mode:
            try:
                apply_all(PROC_SYS, changes, components)
            except SysctlError as exc:
                module.fail_json(msg=str(exc), **result)
        result["applied"] = {key: {"before": before, "after": after} for key, (before, after) in changes.items()}

    new_text = render(effective)
    if before_text is None or parse_conf(before_text) != effective:
        result.update(changed=True, file_changed=True)
        diff["after"] = new_text
        if not module.check_mode:
            try:
                backup = replace_file(module, resolved, new_text, mode=0o644,
                                      expected=before_bytes if before_bytes is not None else False, backup=params["backup"])
            except (ManagedFileError, OSError) as exc:
                undo = restore(PROC_SYS, [(key, before) for key, (before, _after) in changes.items()], components)
                result["applied"] = {}
                module.fail_json(msg="%s%s" % (exc, undo), **result)
            if backup:
                result["backup_file"] = backup
    else:
        diff["after"] = before_text

    for key, other, value in boot_overrides(ROOT, path, effective):
        module.warn("%s sets %s = %s and is read after %s at boot, so it wins over %s; remove it there or rename %s to sort later"
                    % (other, key, value, path, effective[key], os.path.basename(path)))
    if module._diff and result["changed"]:
        diffs = [diff] if result["file_changed"] else []
        if result["applied"]:
            diffs.append({
                "before_header": "running kernel (%s)" % PROC_SYS,
                "after_header": "running kernel (%s)" % PROC_SYS,
                "before": "".join("%s = %s\n" % (k, v["before"]) for k, v in result["applied"].items() if v["before"] is not None),
                "after": "".join("%s = %s\n" % (k, v["after"]) for k, v in result["applied"].items()),
            })
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
