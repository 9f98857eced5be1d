#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_doctor
short_description: Find what would make kubeadm init or join fail on a node, before it runs, and say how to fix it
version_added: 0.2.0
description:
  - Examines a node - before or after a cluster exists - and returns one row per check with V(pass), V(warn), V(fail) or
    V(skip), and for each problem the cause (with the evidence) and the fix (the variable to set or the command to run).
  - "Checks: one CRI endpoint answers (or the chosen one does) - C(cri_endpoint); containerd's CRI plugin is not in
    C(disabled_plugins) - C(containerd_cri_plugin); the runtime's sandbox image is the pause image kubeadm expects -
    C(sandbox_image); the runtime's cgroup driver equals the kubelet's - C(cgroup_driver); cri-dockerd runs with
    C(--network-plugin=cni) - C(cri_dockerd_cni); no swap unless the kubelet is configured for it - C(swap);
    C(br_netfilter) and C(bridge-nf-call-ip*tables=1) - C(br_netfilter); C(ip_forward=1) - C(ip_forward); the IPVS modules
    in IPVS mode - C(ipvs_modules); the apiserver proxy listens and has a live upstream - C(apiserver_proxy); the ports kubeadm
    needs are free or held by the cluster's own processes - C(ports); the node name is lowercase and resolves - C(hostname);
    no files of an earlier cluster while no kubelet runs - C(stale_state)."
  - Clock skew between nodes is decided across the inventory by the C(kubeforge.cluster.doctor_report) filter from RV(time)
    and the controller's timing of each call (RV(clock_offset)).
  - Changes nothing and never fails because a check failed (so a playbook can print every node's table); the
    C(kubeforge.cluster.kubeadm) role's C(doctor.yml) and C(playbooks/doctor.yml) print the table and fail on a V(fail).
  - Runs with the Python standard library only; uses C(containerd config dump), C(docker info) when installed.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
attributes:
  action:
    support: full
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
options:
  checks:
    description: The checks to run; empty runs all.
    type: list
    elements: str
    default: []
  cri_socket:
    description: The chosen CRI endpoint (C(kubeforge_cri_socket)); empty - exactly one endpoint must answer.
    type: str
    default: ""
  container_runtime:
    description: The runtime the node should use, when no CRI endpoint answers to tell.
    type: str
    default: containerd
    choices: [containerd, docker]
  kubernetes_version:
    description: The Kubernetes release; with O(image_repository) it gives the pause image kubeadm expects.
    type: str
    default: ""
  image_repository:
    description: kubeadm's image repository (empty - C(registry.k8s.io)).
    type: str
    default: ""
  sandbox_image:
    description: The sandbox image the runtime must use; empty - the one kubeadm of O(kubernetes_version) expects.
    type: str
    default: ""
  cgroup_driver:
    description: The cgroup driver the runtime and the kubelet must share.
    type: str
    default: systemd
    choices: [systemd, cgroupfs]
  kube_proxy_mode:
    description: kube-proxy's mode; V(ipvs) needs the IPVS modules.
    type: str
    default: iptables
  kubelet_swap:
    description: The kubelet is configured to run with swap on.
    type: bool
    default: false
  apiserver_proxy:
    description: The node reaches the API servers through a local proxy.
    type: bool
    default: false
  apiserver_proxy_endpoint:
    description: Where the local proxy listens.
    type: str
    default: 127.0.0.1:6443
  apiserver_backends:
    description: The API servers behind the proxy (C(host:port)); at least one must answer once the cluster exists.
    type: list
    elements: str
    default: []
  apiserver_bind_port:
    description: The port the API server binds to on control-plane nodes.
    type: int
    default: 6443
  control_plane:
    description: The node is (or becomes) a control-plane node.
    type: bool
    default: false
  etcd_mode:
    description: V(stacked) etcd runs on the control-plane nodes (ports 2379/2380, C(/var/lib/etcd)).
    type: str
    default: stacked
    choices: [stacked, external]
  node_name:
    description: The Node name kubeadm registers (empty - the host name).
    type: str
    default: ""
  timeout:
    description: Seconds for each connection attempt.
    type: float
    default: 2.0
seealso:
  - module: kubeforge.cluster.cri_socket
  - module: kubeforge.cluster.kubeadm_config
"""

EXAMPLES = r"""
- name: Examine the node
  kubeforge.cluster.node_doctor:
    cri_socket: "{{ kubeforge_cri_socket }}"
    kubernetes_version: 1.37.0
    control_plane: "{{ inventory_hostname in groups['control_plane'] }}"
  register: doctor

- name: Show the failed checks
  ansible.builtin.debug:
    msg: "{{ doctor.checks | selectattr('status', 'eq', 'fail') | list }}"
"""

RETURN = r"""
checks:
  description: One entry per check, in a fixed order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check.
      type: str
      sample: containerd_cri_plugin
    status:
      description: V(pass), V(warn), V(fail) or V(skip).
      type: str
      sample: fail
    cause:
      description: What is wrong, with the evidence; empty when it passed.
      type: str
      sample: "containerd's CRI plugin is disabled: disabled_plugins = ['cri'] in containerd config dump"
    fix:
      description: The variable to set or the command to run.
      type: str
    evidence:
      description: What a passing or skipped check saw.
      type: str
summary:
  description: How many checks ended in each status.
  returned: always
  type: dict
  sample: {pass: 11, warn: 0, fail: 1, skip: 1}
time:
  description: The node's clock (seconds since the epoch) when the checks ran.
  returned: always
  type: float
hostname:
  description: The node's host name.
  returned: always
  type: str
clock_offset:
  description: The node's clock minus the controller's at the call's midpoint, in seconds (set by the action plugin).
  returned: always
  type: float
clock_uncertainty:
  description: Half the call's duration; the offset is exact to within this.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_versions import MINORS, expected_pause_image, parse_version
from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor import Host, now, run_checks, summary
from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor_checks import CHECK_NAMES, CHECKS

C_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def argument_spec():
    return dict(
        checks=dict(type="list", elements="str", default=[]),
        cri_socket=dict(type="str", default=""),
        container_runtime=dict(type="str", default="containerd", choices=["containerd", "docker"]),
        kubernetes_version=dict(type="str", default=""),
        image_repository=dict(type="str", default=""),
        sandbox_image=dict(type="str", default=""),
        cgroup_driver=dict(type="str", default="systemd", choices=["systemd", "cgroupfs"]),
        kube_proxy_mode=dict(type="str", default="iptables"),
        kubelet_swap=dict(type="bool", default=False),
        apiserver_proxy=dict(type="bool", default=False),
        apiserver_proxy_endpoint=dict(type="str", default="127.0.0.1:6443"),
        apiserver_backends=dict(type="list", elements="str", default=[]),
        apiserver_bind_port=dict(type="int", default=6443),
        control_plane=dict(type="bool", default=False),
        etcd_mode=dict(type="str", default="stacked", choices=["stacked", "external"]),
        node_name=dict(type="str", default=""),
        timeout=dict(type="float", default=2.0),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    unknown = sorted(set(params["checks"]) - set(CHECK_NAMES))
    if unknown:
        module.fail_json(msg="unknown checks %s; the checks are %s" % (", ".join(unknown), ", ".join(CHECK_NAMES)))
    if not params["sandbox_image"] and params["kubernetes_version"]:
        try:
            minor = parse_version(params["kubernetes_version"])[0]
        except ValueError as exc:
            module.fail_json(msg="kubernetes_version: %s" % exc)
        if minor in MINORS:
            params["sandbox_image"] = expected_pause_image(minor, params["image_repository"])
    for endpoint in [params["apiserver_proxy_endpoint"]] + params["apiserver_backends"]:
        if ":" not in endpoint or not endpoint.rpartition(":")[2].isdigit():
            module.fail_json(msg="%r is not host:port" % endpoint)

    def run(argv):
        return module.run_command(argv, environ_update=C_ENV)

    def which(name):
        return module.get_bin_path(name, opt_dirs=["/usr/local/bin", "/usr/sbin", "/sbin"])

    host = Host(root="/", run=run, which=which)
    rows = run_checks(host, params, CHECKS, params["checks"])
    module.exit_json(changed=False, checks=rows, summary=summary(rows), time=now(), hostname=host.hostname())


if __name__ == "__main__":
    main()
