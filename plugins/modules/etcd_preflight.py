#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_preflight
short_description: Read what an etcd member host has before anything is changed on it
version_added: 0.1.0
description:
  - One read-only look at a (future) etcd member, so that the role decides from the host and validates before it
    touches anything.
  - Whether each of O(addresses) is an address of this host (the kernel's local routes, so C(127.0.0.0/8) counts
    and a floating address that is not up does not), whether O(data_dir) already holds a member, the bootstrap
    keys (C(initial-cluster), C(initial-cluster-state), C(initial-cluster-token)) of the existing O(config_file),
    the installed etcd version and the systemd unit's state.
  - With an even O(cluster_size) it warns that the cluster tolerates no more failures than one member less.
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
options:
  addresses:
    description: IP addresses the member will listen on; RV(missing_addresses) lists those this host does not have.
    type: list
    elements: str
    default: []
  data_dir:
    description: The member's data directory.
    type: path
    required: true
  config_file:
    description: The member's configuration file (YAML, as the etcd role writes it).
    type: path
    required: true
  etcd_path:
    description: The etcd server binary.
    type: path
    default: /usr/bin/etcd
  service:
    description: The systemd unit of the member.
    type: str
    default: etcd
  cluster_size:
    description: Number of members the cluster is meant to have; an even number is allowed with a warning.
    type: int
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Look at the member host before changing it
  kubeforge.cluster.etcd_preflight:
    addresses: ["{{ etcd_address }}"]
    data_dir: /var/lib/etcd/data
    config_file: /etc/etcd/etcd.conf.yml
    cluster_size: "{{ groups['etcd'] | length }}"
  register: etcd_preflight
"""

RETURN = r"""
missing_addresses:
  description: Those of O(addresses) that are not addresses of this host.
  returned: always
  type: list
  elements: str
host_addresses:
  description: The host's own addresses (single addresses, and local networks such as 127.0.0.0/8).
  returned: always
  type: list
  elements: str
has_data:
  description: Whether O(data_dir) holds an etcd member (a WAL or a backend database).
  returned: always
  type: bool
bootstrap:
  description: The bootstrap keys found in O(config_file) (empty when it does not exist).
  returned: always
  type: dict
  sample: {initial-cluster: "node1=https://10.0.0.11:2380", initial-cluster-state: new, initial-cluster-token: etcd-kubeforge}
etcd_version:
  description: The version of O(etcd_path), or null when it is not installed.
  returned: always
  type: str
  sample: 3.5.16
service:
  description: The systemd unit as C(systemctl show) reports it (C(active_state), C(main_pid), C(unit_file_state),
    C(fragment_path), C(active_enter_timestamp_monotonic)).
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import (
    etcd_version,
    has_member_data,
    host_addresses,
    local_networks,
    missing_addresses,
    read_bootstrap,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import C_ENV
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    is_ip_address,
    require_str,
    safe_name,
)

SHOW = ("ActiveState", "MainPID", "UnitFileState", "FragmentPath", "ActiveEnterTimestampMonotonic")


def service_state(module, service):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return {}
    rc, stdout, _stderr = module.run_command([systemctl, "show", service, "-p", ",".join(SHOW)], environ_update=C_ENV)
    state = {}
    for line in stdout.splitlines() if rc == 0 else []:
        key, _sep, value = line.partition("=")
        state[key] = value
    return {"active_state": state.get("ActiveState"), "main_pid": int(state.get("MainPID") or 0),
            "unit_file_state": state.get("UnitFileState"), "fragment_path": state.get("FragmentPath"),
            "active_enter_timestamp_monotonic": int(state.get("ActiveEnterTimestampMonotonic") or 0)}


def main():
    module = AnsibleModule(argument_spec=dict(
        addresses=dict(type="list", elements="str", default=[]),
        data_dir=dict(type="path", required=True),
        config_file=dict(type="path", required=True),
        etcd_path=dict(type="path", default="/usr/bin/etcd"),
        service=dict(type="str", default="etcd"),
        cluster_size=dict(type="int"),
    ), supports_check_mode=True)
    params = module.params
    try:
        safe_name("service", params["service"], "unit name")
        for option in ("data_dir", "config_file", "etcd_path"):
            absolute_path(option, params[option])
        for index, address in enumerate(params["addresses"]):
            require_str("addresses[%d]" % index, address)
            if not is_ip_address(address):
                raise InputError("addresses[%d]" % index, "%r is not an IP address" % address)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    size = params["cluster_size"]
    if size and size % 2 == 0:
        module.warn("the etcd cluster is meant to have %d members: an even number tolerates as many failed members as %d "
                    "(quorum is %d, so %d may fail) while one more machine can fail; 3 or 5 members are the usual choice"
                    % (size, size - 1, size // 2 + 1, (size - 1) // 2))
    networks = local_networks()

    def run(argv):
        return module.run_command(argv, environ_update=C_ENV)
    module.exit_json(
        changed=False,
        missing_addresses=missing_addresses(params["addresses"], networks),
        host_addresses=host_addresses(networks),
        has_data=has_member_data(params["data_dir"]),
        bootstrap=read_bootstrap(params["config_file"]),
        etcd_version=etcd_version(run, params["etcd_path"]) if os.path.exists(params["etcd_path"]) else None,
        service=service_state(module, params["service"]),
    )


if __name__ == "__main__":
    main()
