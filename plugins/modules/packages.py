#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: packages
short_description: Ensure distribution packages are present or absent, with holds, truthful in check mode
version_added: 0.2.0
description:
  - The collection's one way to install distribution packages. One call inspects and fixes the whole list, so a role
    that installs packages costs one task on a converged node.
  - Looks with C(dpkg-query) (apt) or C(rpm -q) (dnf, yum) and acts with C(apt-get)/C(apt-mark) or C(dnf)/C(yum), under
    C(LANG=C LC_ALL=C) and C(DEBIAN_FRONTEND=noninteractive); existing configuration files are kept
    (C(--force-confdef --force-confold)). Nothing but python3 is needed on the node (no python3-apt), so check mode
    on a fresh machine reports what a real run would install.
  - C(apt-get update) runs only when something must be installed and the package lists are older than
    O(cache_valid_time), or when apt does not know a package or version yet. dnf refreshes its metadata itself
    (C(--refresh) once when a package is not found).
  - After installing, the packages are looked up again; a package that is still missing or at another version is an
    error naming it.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be installed, removed, held or released; with apt it also asks C(apt-get install -s)
        which version would be installed. Package lists that are missing or stale are not refreshed in check mode
        (a warning says so).
  diff_mode:
    support: full
    details:
      - The listed packages with their versions and holds, before and after.
options:
  names:
    description:
      - Package names, each optionally pinned as C(name=version) or C(name=version*) (a prefix; with dnf
        C(name=1.6.20) matches every release of 1.6.20).
      - A name is a plain package name (letters, digits, C(+._-)); nothing in it can become a command option. Each
        element must be a string.
    type: list
    elements: raw
    default: []
  debs:
    description:
      - Absolute paths of C(.deb) (apt) or C(.rpm) (dnf/yum) files already on the node. Each is installed only when
        the exact package version it contains is not installed (its dependencies come from the repositories).
      - Only with O(state=present). Each element must be a string.
    type: list
    elements: raw
    default: []
  state:
    description:
      - V(present) installs what is missing or at another version than pinned.
      - V(absent) removes the installed ones with C(apt-get remove), which keeps their configuration files; pins are
        not allowed.
    type: str
    choices: [present, absent]
    default: present
  hold:
    description:
      - V(true) holds the packages at their version (C(apt-mark hold), C(dnf versionlock add)); V(false) releases
        such holds; unset leaves holds as they are.
      - A held package that must change version (a new pin) is released for that transaction and held again.
      - With dnf or yum the versionlock plugin must be installed, otherwise a warning says the hold is ignored.
    type: bool
  cache_valid_time:
    description:
      - Age in seconds up to which the apt package lists are used without C(apt-get update) when something must be
        installed. V(0) always updates before installing. Ignored by dnf and yum.
    type: int
    default: 3600
  install_recommends:
    description: Install recommended (apt) or weak (dnf) dependencies too.
    type: bool
    default: false
  allow_downgrade:
    description: Allow a pin or a package file to install an older version than the installed one (apt).
    type: bool
    default: false
  start_services:
    description:
      - V(false) installs with apt under a temporary C(/usr/sbin/policy-rc.d) that exits 101, so the packages'
        maintainer scripts neither start their services nor restart or reload ones already running (for example the
        distribution's C(nginx.service) when a role runs its own nginx unit). An existing C(policy-rc.d) of the
        operator is moved aside for the transaction and put back; the temporary one is removed.
      - Services are still enabled as the packages ship them; disable them in the role if they must stay off.
      - dnf and yum start no service on installation anyway; there the option changes nothing.
    type: bool
    default: true
  lock_timeout:
    description: Seconds apt waits for the dpkg lock held by another process (for example unattended-upgrades).
    type: int
    default: 120
notes:
  - Roles call this module once per concern with their whole package list; see C(docs/DEVELOPING.md), "Installing
    software".
seealso:
  - module: kubeforge.cluster.release_artifact
"""

EXAMPLES = r"""
- name: Install the base packages of a node
  kubeforge.cluster.packages:
    names: [conntrack, ebtables, socat, ipset]
    cache_valid_time: 86400

- name: Install kubeadm, kubelet and kubectl at one version and hold them
  kubeforge.cluster.packages:
    names:
      - kubeadm=1.36.0-*
      - kubelet=1.36.0-*
      - kubectl=1.36.0-*
    hold: true

- name: Install a package file that is already on the node
  kubeforge.cluster.packages:
    debs:
      - /var/cache/kubeforge/containerd_1.7.24~ds1-4_amd64.deb

- name: Install nginx without starting the distribution's nginx.service
  kubeforge.cluster.packages:
    names: [nginx, libnginx-mod-stream]
    start_services: false

- name: Remove Docker's packages
  kubeforge.cluster.packages:
    names: [docker.io, docker-ce]
    state: absent
"""

RETURN = r"""
installed:
  description: Packages installed (or that would be, in check mode), by name.
  returned: always
  type: list
  elements: str
  sample: [containerd, runc]
removed:
  description: Packages removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: []
held:
  description: Packages newly held (or that would be).
  returned: always
  type: list
  elements: str
  sample: [kubeadm, kubelet]
unheld:
  description: Packages whose hold was released (or would be).
  returned: always
  type: list
  elements: str
  sample: []
cache_updated:
  description: Whether C(apt-get update) ran.
  returned: always
  type: bool
  sample: false
packages:
  description:
    - Each listed package after the run (in check mode the prediction) as C(version) and C(held), or null when it
      is not installed. A version that check mode cannot predict is null.
  returned: always
  type: dict
  sample: {"containerd": {"version": "1.6.20~ds1-1+b1", "held": false}, "docker.io": null}
rc:
  description: Exit status of the command that failed.
  returned: failure of a command
  type: int
  sample: 100
stdout:
  description: Standard output of the command that failed.
  returned: failure of a command
  type: str
  sample: ""
stderr:
  description: Standard error of the command that failed.
  returned: failure of a command
  type: str
  sample: "E: Unable to locate package contaiinerd"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._packages import (
    PackagesError,
    ensure,
    manager_for,
    parse_files,
    parse_names,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, require_int


def argument_spec():
    return dict(
        # raw elements: a non-string is refused by the validators instead of being turned into "['a']"
        names=dict(type="list", elements="raw", default=[]),
        debs=dict(type="list", elements="raw", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        hold=dict(type="bool"),
        cache_valid_time=dict(type="int", default=3600),
        install_recommends=dict(type="bool", default=False),
        allow_downgrade=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=120),
        start_services=dict(type="bool", default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not params["names"] and not params["debs"]:
        module.fail_json(msg="names or debs must list at least one package")
    try:
        requests = parse_names("names", params["names"], allow_versions=params["state"] == "present")
        files = parse_files("debs", params["debs"])
        if files and params["state"] == "absent":
            raise InputError("debs", "package files can only be installed (state=present); list the package names to remove them")
        require_int("cache_valid_time", params["cache_valid_time"], minimum=0)
        require_int("lock_timeout", params["lock_timeout"], minimum=0)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    try:
        manager = manager_for(module, params["lock_timeout"])
        outcome = ensure(manager, requests, files, state=params["state"], hold=params["hold"], cache_valid_time=params["cache_valid_time"],
                         recommends=params["install_recommends"], allow_downgrade=params["allow_downgrade"], check_mode=module.check_mode,
                         start_services=params["start_services"])
    except PackagesError as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    for warning in outcome.warnings:
        module.warn(warning)
    result = outcome.as_dict()
    if module._diff and outcome.changed:
        result["diff"] = outcome.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
