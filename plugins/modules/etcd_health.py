#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_health
short_description: Check an etcd cluster from one member with etcdctl over TLS
version_added: 0.1.0
description:
  - Runs C(etcdctl member list), C(endpoint status) and C(endpoint health) (one call each, all members) with a client
    certificate and reports every member's health, version, raft index and the leader.
  - Fails, naming each member and its reason, when a member is unhealthy, no leader is agreed on, a learner is
    still waiting for promotion, O(name) is not a member, or the members are not O(expected_members).
  - With O(wait), keeps looking until the cluster is healthy or the time is up (for a cluster that is starting).
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
  - kubeforge.cluster.etcd_client
options:
  name:
    description: The member this runs on (its name in the member list).
    type: str
    required: true
  expected_members:
    description:
      - The member names the cluster should have (for example the etcd inventory group). A missing one is a problem;
        a member that is not listed is reported in RV(extra_members) with a warning (removing members is a deliberate
        step, for example C(playbooks/etcd_scale.yml)).
    type: list
    elements: str
  wait:
    description: Seconds to keep looking until the cluster is healthy; V(0) looks once.
    type: int
    default: 0
  fail_on_unhealthy:
    description: Fail when a problem is found; with V(false) the problems are only returned.
    type: bool
    default: true
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Check the cluster from every member
  kubeforge.cluster.etcd_health:
    name: "{{ inventory_hostname }}"
    endpoints: "{{ groups['etcd'] | map('extract', hostvars, 'etcd_client_url') | list }}"
    ca_file: /etc/etcd/pki/current/ca.pem
    cert_file: /etc/etcd/pki/current/admin.pem
    key_file: /etc/etcd/pki/current/admin-key.pem
    expected_members: "{{ groups['etcd'] }}"
"""

RETURN = r"""
healthy:
  description: Whether no problem was found.
  returned: always
  type: bool
problems:
  description: Every problem, naming the member and the reason.
  returned: always
  type: list
  elements: str
  sample: ["unhealthy: node2 (https://10.0.0.12:2379): context deadline exceeded"]
extra_members:
  description: Members that are not in O(expected_members).
  returned: when O(expected_members) is given
  type: list
  elements: str
cluster:
  description: C(cluster_id), C(leader) (name) and C(members), each with name, id, endpoint, peer_urls, healthy,
    error, is_learner, started, is_leader, version, raft_index, raft_applied_index, db_size.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_cluster import ClusterError, extra_members, health_problems, look, wait_for
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import NodeOps
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import EtcdctlError


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        endpoints=dict(type="list", elements="str", required=True),
        ca_file=dict(type="path", required=True),
        cert_file=dict(type="path", required=True),
        key_file=dict(type="path", required=True),
        etcdctl_path=dict(type="str", default="etcdctl"),
        command_timeout=dict(type="int", default=10),
        expected_members=dict(type="list", elements="str"),
        wait=dict(type="int", default=0),
        fail_on_unhealthy=dict(type="bool", default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    ops = NodeOps(module, p["etcdctl_path"], p["endpoints"], p["ca_file"], p["cert_file"], p["key_file"], p["command_timeout"])
    state = {"view": None, "problems": []}

    def healthy():
        try:
            state["view"] = look(ops.etcdctl, p["endpoints"])
        except EtcdctlError as exc:
            state["view"], state["problems"] = None, ["no member answers at %s: %s" % (", ".join(p["endpoints"]), exc.detail)]
            raise ClusterError(state["problems"][0]) from None
        state["problems"] = health_problems(state["view"], p["name"], p["expected_members"])
        if state["problems"]:
            raise ClusterError("; ".join(state["problems"]))
        return True

    try:
        wait_for(ops, p["wait"], "a healthy cluster", healthy)
    except ClusterError:
        pass
    result = {"changed": False, "healthy": not state["problems"], "problems": state["problems"],
              "cluster": state["view"].as_dict() if state["view"] else {}}
    if p["expected_members"] is not None and state["view"]:
        result["extra_members"] = extra_members(state["view"], p["expected_members"])
        if result["extra_members"]:
            module.warn("etcd members %s are not in the expected members (the etcd group); playbooks/etcd_scale.yml removes "
                        "them" % ", ".join(result["extra_members"]))
    if state["problems"] and p["fail_on_unhealthy"]:
        module.fail_json(msg="etcd cluster seen from member %s: %s" % (p["name"], "; ".join(state["problems"])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
