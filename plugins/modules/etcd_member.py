#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_member
short_description: Restart, join or remove one etcd member without costing the cluster its quorum
version_added: 0.1.0
description:
  - B(restarted) (run on the member) restarts its systemd unit only when the other voting members keep quorum
    without it (a single-member cluster excepted). When it leads, leadership is first moved (C(etcdctl
    move-leader)) to a healthy member, the first of O(prefer) when possible. Returns when the member answers
    C(endpoint health), sees a leader and has applied the raft index the cluster had before.
  - B(present) (run on the joining member, configured with C(initial-cluster-state) C(existing)) adds it
    with C(member add --learner), starts the unit and promotes the learner once it has caught up, so a member that
    never comes up costs the cluster nothing. A join an earlier run left half done is resumed; a member that is
    already a healthy voter is left alone.
  - B(absent) (run on a member that stays) removes member O(name), moving leadership away first when it leads,
    only when the remaining voters keep quorum. Stopping and wiping the removed host is left to the caller.
  - Used by the C(kubeforge.cluster.etcd) role to change one member at a time (a loop with C(delegate_to)).
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.etcd_client
attributes:
  check_mode:
    support: full
    details:
      - The same safety checks run against the live cluster; nothing is restarted, added or removed.
  diff_mode:
    support: none
options:
  name:
    description: The member's name (its C(name) in the etcd configuration).
    type: str
    required: true
  state:
    description: What to do with the member.
    type: str
    choices: [restarted, present, absent]
    required: true
  peer_urls:
    description: The member's peer URLs (for O(state=present)).
    type: list
    elements: str
  client_url:
    description: The member's own client URL (for O(state=present)); it is not asked before the member runs.
    type: str
  service:
    description: The member's systemd unit (O(state=restarted) and O(state=present)).
    type: str
    default: etcd
  prefer:
    description: Member names to hand leadership to first (for example those already restarted in this run).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for the member to be healthy (restart, join) or gone (remove).
    type: int
    default: 120
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Restart the members whose configuration changed, one at a time, the leader last
  kubeforge.cluster.etcd_member:
    name: "{{ item }}"
    state: restarted
    endpoints: "{{ etcd_endpoints }}"
    ca_file: /etc/etcd/pki/current/ca.pem
    cert_file: /etc/etcd/pki/current/admin.pem
    key_file: /etc/etcd/pki/current/admin-key.pem
  delegate_to: "{{ item }}"
  loop: "{{ members_to_restart }}"
  run_once: true
"""

RETURN = r"""
member:
  description: The member the change was about.
  returned: always
  type: str
leader_moved_to:
  description: The member that took over leadership before a restart or removal, or null.
  returned: when O(state) is restarted or absent
  type: str
seconds:
  description: Seconds from the restart until the member was healthy and caught up.
  returned: when O(state=restarted) and not in check mode
  type: float
steps:
  description: What a join did (C(added as learner), C(started), C(promoted)).
  returned: when O(state=present)
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_cluster import ClusterError, join, remove, restart
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import NodeOps
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import EtcdctlError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, safe_name


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", required=True, choices=["restarted", "present", "absent"]),
        endpoints=dict(type="list", elements="str", required=True),
        peer_urls=dict(type="list", elements="str"),
        client_url=dict(type="str"),
        service=dict(type="str", default="etcd"),
        prefer=dict(type="list", elements="str", default=[]),
        timeout=dict(type="int", default=120),
        ca_file=dict(type="path", required=True),
        cert_file=dict(type="path", required=True),
        key_file=dict(type="path", required=True),
        etcdctl_path=dict(type="str", default="etcdctl"),
        command_timeout=dict(type="int", default=10),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "present", ("peer_urls", "client_url"))])
    p = module.params
    try:
        safe_name("name", p["name"], "member name")
        safe_name("service", p["service"], "unit name")
    except InputError as exc:
        module.fail_json(msg=str(exc))
    ops = NodeOps(module, p["etcdctl_path"], p["endpoints"], p["ca_file"], p["cert_file"], p["key_file"], p["command_timeout"])
    try:
        if p["state"] == "restarted":
            result = restart(ops, p["name"], p["service"], p["endpoints"], p["prefer"], p["timeout"], module.check_mode)
        elif p["state"] == "present":
            result = join(ops, p["name"], p["peer_urls"], p["client_url"], p["service"], p["endpoints"], p["timeout"], module.check_mode)
        else:
            result = remove(ops, p["name"], p["endpoints"], p["timeout"], module.check_mode)
    except (ClusterError, EtcdctlError) as exc:
        module.fail_json(msg=str(exc), member=p["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
