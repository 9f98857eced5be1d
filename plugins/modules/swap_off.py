#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swap_off
short_description: Turn swap off now and for good (fstab entries and systemd swap units)
version_added: 0.1.0
description:
  - The kubelet refuses to start with swap on unless it is configured for swap. This module looks at the whole concern
    in one run and fixes what differs.
  - Swap that C(/proc/swaps) lists is turned off with C(swapoff --all), unless O(allow_swapoff=false) (a container,
    whose kernel is its host's), which fails naming the swap areas and O(refusal_hint).
  - Swap entries of O(fstab) are commented out (a backup is kept with O(backup)); a missing fstab has none.
  - Every swap unit systemd knows (unit files and the units its fstab, zram and GPT generators make) is masked, so that
    nothing turns swap on again at boot. A unit file written by the administrator in C(/etc/systemd/system) would be
    lost by masking, so the module refuses before it changes anything and names the unit and the fix.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be turned off, commented out and masked, without doing it.
  diff_mode:
    support: full
    details:
      - Shows the fstab before and after.
  safe_file_operations:
    support: full
options:
  fstab:
    description: The fstab to look at.
    type: path
    default: /etc/fstab
  allow_swapoff:
    description: Whether active swap may be turned off here; when false, active swap fails the task.
    type: bool
    default: true
  refusal_hint:
    description: Appended to the failure message when O(allow_swapoff=false) meets active swap (what to do instead).
    type: str
    default: ""
  mask_units:
    description: Mask the swap units (on a host with systemd; without C(systemctl) there are none).
    type: bool
    default: true
  backup:
    description: Keep a copy of the fstab before commenting out its swap entries.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Turn swap off for good, refusing to touch the host's swap from a container
  kubeforge.cluster.swap_off:
    allow_swapoff: "{{ not in_container }}"
    refusal_hint: Turn swap off on the host of this container.
"""

RETURN = r"""
active:
  description: The swap areas /proc/swaps listed before the module ran.
  returned: always
  type: list
  elements: str
  sample: [/dev/zram0]
swapped_off:
  description: Whether swapoff ran (or would run in check mode).
  returned: always
  type: bool
fstab_entries:
  description: The fstab swap lines commented out (or that would be).
  returned: always
  type: list
  elements: str
masked:
  description: The swap units masked (or that would be).
  returned: always
  type: list
  elements: str
backup_file:
  description: The fstab's backup copy.
  returned: when the fstab changed and O(backup=true)
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError, read_managed, replace_file
from ansible_collections.kubeforge.cluster.plugins.module_utils._swap import active_swaps, comment_fstab, swap_units
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path

C_LOCALE = {"LANGUAGE": "C", "LC_ALL": "C"}
# Unit tests point these at a fake tree.
PROC_SWAPS = "/proc/swaps"
SYSTEMD_SYSTEM = "/etc/systemd/system"


def argument_spec():
    return dict(
        fstab=dict(type="path", default="/etc/fstab"),
        allow_swapoff=dict(type="bool", default=True),
        refusal_hint=dict(type="str", default=""),
        mask_units=dict(type="bool", default=True),
        backup=dict(type="bool", default=True),
    )


def is_masked(unit):
    """/etc/systemd/system/<unit> is the link to /dev/null that ``systemctl mask`` makes."""
    path = os.path.join(SYSTEMD_SYSTEM, unit)
    return os.path.islink(path) and os.readlink(path) == "/dev/null"


def admin_unit(unit):
    """/etc/systemd/system/<unit> is something else: a unit file masking would delete."""
    return os.path.lexists(os.path.join(SYSTEMD_SYSTEM, unit)) and not is_masked(unit)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    result = dict(changed=False, active=[], swapped_off=False, fstab_entries=[], masked=[])
    try:
        fstab = absolute_path("fstab", params["fstab"])
        resolved, before_bytes, before_text = read_managed(fstab)
    except (InputError, ManagedFileError) as exc:
        module.fail_json(msg=str(exc), **result)
    try:
        with open(PROC_SWAPS) as handle:
            result["active"] = active_swaps(handle.read())
    except FileNotFoundError:
        result["active"] = []

    units = []
    systemctl = module.get_bin_path("systemctl") if params["mask_units"] else None
    if systemctl:
        argv = [systemctl, "list-unit-files", "--type=swap", "--no-legend", "--no-pager", "--plain"]
        rc, out, err = module.run_command(argv, environ_update=C_LOCALE)
        if rc not in (0, 1):  # 1: nothing matches
            module.fail_json(msg="systemctl list-unit-files --type=swap failed: %s" % (err.strip() or out.strip()),
                             rc=rc, stdout=out, stderr=err, cmd=argv, **result)
        units = swap_units(out)

    # every refusal before the first change
    if result["active"] and not params["allow_swapoff"]:
        module.fail_json(msg="swap is on (%s in %s) and allow_swapoff is false. %s"
                         % (", ".join(result["active"]), PROC_SWAPS, params["refusal_hint"]), **result)
    written = [unit for unit in units if admin_unit(unit)]
    if written:
        module.fail_json(msg="%s is a swap unit written on this host; masking would delete it. Disable or remove it yourself "
                         "(systemctl disable --now %s), or leave swap to the kubelet's swap support (node_prep_kubelet_swap_enabled: true)"
                         % (", ".join(os.path.join(SYSTEMD_SYSTEM, unit) for unit in written), written[0]), **result)
    new_text, entries = comment_fstab(before_text) if before_text is not None else (None, [])
    to_mask = [unit for unit in units if not is_masked(unit)]
    result.update(swapped_off=bool(result["active"]), fstab_entries=entries, masked=to_mask,
                  changed=bool(result["active"] or entries or to_mask))
    if entries and module._diff:
        result["diff"] = {"before_header": fstab, "after_header": fstab, "before": before_text, "after": new_text}
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    if result["active"]:
        argv = [module.get_bin_path("swapoff", required=True, opt_dirs=["/sbin", "/usr/sbin"]), "--all"]
        rc, out, err = module.run_command(argv, environ_update=C_LOCALE)
        if rc != 0:
            module.fail_json(msg="swapoff --all failed: %s" % (err.strip() or out.strip()), rc=rc, stdout=out, stderr=err, cmd=argv, **result)
    if entries:
        try:
            backup = replace_file(module, resolved, new_text, expected=before_bytes, backup=params["backup"])
        except ManagedFileError as exc:
            module.fail_json(msg=str(exc), **result)
        if backup:
            result["backup_file"] = backup
    if to_mask:
        # "--" ends systemctl's options: unit names come from systemctl's own output and match UNIT_RE
        argv = [systemctl, "mask", "--"] + to_mask
        rc, out, err = module.run_command(argv, environ_update=C_LOCALE)
        if rc != 0:
            module.fail_json(msg="systemctl mask %s failed: %s" % (" ".join(to_mask), err.strip() or out.strip()),
                             rc=rc, stdout=out, stderr=err, cmd=argv, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
