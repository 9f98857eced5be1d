#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeadm_config
short_description: Render kubeadm's configuration for one node, validate it against the upstream API types and write it
version_added: 0.2.0
description:
  - Renders the kubeadm configuration of a node from settings - InitConfiguration, ClusterConfiguration,
    KubeletConfiguration and KubeProxyConfiguration in C(init.yaml) on the first control-plane node, JoinConfiguration in
    C(join.yaml) on the others - with the kubeadm API version the Kubernetes minor reads (V(v1beta4); V(v1beta3) on request
    for 1.35 and 1.36, where it is deprecated; kubeadm 1.37 removed it).
  - Checks the settings first and fails before anything is written, naming the variable of the C(kubeforge.cluster.kubeadm)
    role to fix - an unsupported Kubernetes version, a pod subnet overlapping the Service subnet or a node address, a
    control-plane endpoint that contradicts the apiserver proxy, incomplete external etcd, a sandbox image other than the pause
    image kubeadm expects, labels the kubelet may not set on itself, extra settings that override another variable's value.
  - Validates every document against a schema of the upstream API types of that Kubernetes minor (made from the Go types by
    C(tools/kube_schema.py), kept in C(plugins/module_utils/kubeadm_schemas)). Unknown or mistyped fields and wrong enum values
    are errors that name the field and the variable that produced it.
  - In kube-proxy mode V(ipvs) checks (without loading anything) that the node's kernel has the IPVS modules.
  - Where kubeadm is installed, also runs C(kubeadm config validate --config) on the new text before writing it.
  - Writes the file atomically with mode 0600 (it can hold a bootstrap token and a certificate key) in a 0700 directory, only
    when its content differs; tokens and keys are masked in the diff and in messages.
  - This module runs as an action plugin - the rendering and schema validation on the controller, the probes and the write on
    the node through builtin modules.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Renders, validates (schemas and C(kubeadm config validate)) and reports what would change without writing.
  diff_mode:
    support: full
    details:
      - The file before and after, with bootstrap tokens and certificate keys masked.
  action:
    support: full
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
options:
  kubernetes_version:
    description: The Kubernetes release, for example V(1.37.0); its minor must be one of those the schemas cover (1.35, 1.36, 1.37).
    type: str
    required: true
  api_version:
    description: The kubeadm API version; V(auto) is the newest the minor reads (V(v1beta4)).
    type: str
    default: auto
    choices: [auto, v1beta3, v1beta4]
  node_role:
    description: V(init) renders C(init.yaml) (first control-plane node); V(control-plane) and V(worker) render C(join.yaml).
    type: str
    required: true
    choices: [init, control-plane, worker]
  node_name:
    description: The Node name; empty lets kubeadm use the host name.
    type: str
    default: ""
  advertise_address:
    description: The address the API server advertises on a control-plane node; empty lets kubeadm choose the default route's.
    type: str
    default: ""
  cri_socket:
    description: The node's CRI endpoint (C(unix:///...)), as M(kubeforge.cluster.cri_socket) found it.
    type: str
    required: true
  control_plane_endpoint:
    description:
      - A VIP or DNS name with port shared by all control-plane nodes.
      - Empty means the apiserver proxy's endpoint when O(apiserver_proxy=true), else O(first_control_plane_address) with
        O(apiserver_bind_port).
    type: str
    default: ""
  first_control_plane_address:
    description: The first control-plane node's address, the endpoint when nothing else gives one.
    type: str
    default: ""
  control_plane_count:
    description: How many control-plane nodes there are (a warning when several share one node's address).
    type: int
    default: 1
  apiserver_proxy:
    description: Every node reaches the API servers through a local proxy (role C(kubeforge.cluster.apiserver_proxy)).
    type: bool
    default: false
  apiserver_proxy_endpoint:
    description: Where the local apiserver proxy listens; the control-plane endpoint when O(apiserver_proxy=true).
    type: str
    default: 127.0.0.1:6443
  apiserver_bind_port:
    description: The port the API server binds to (the proxy's backend port, 5443, when the proxy is used).
    type: int
    default: 6443
  etcd_mode:
    description: V(stacked) (kubeadm runs etcd on the control-plane nodes) or V(external).
    type: str
    default: stacked
    choices: [stacked, external]
  etcd_endpoints:
    description: External etcd client URLs.
    type: list
    elements: str
    default: []
  etcd_ca_file:
    description: External etcd CA certificate on the control-plane nodes.
    type: str
    default: ""
  etcd_cert_file:
    description: External etcd client certificate on the control-plane nodes.
    type: str
    default: ""
  etcd_key_file:
    description: External etcd client key on the control-plane nodes.
    type: str
    default: ""
  image_repository:
    description: Registry (mirror) kubeadm pulls its images from; empty is C(registry.k8s.io).
    type: str
    default: ""
  pod_subnet:
    description: The pod network CIDR (dual-stack - two, comma-separated).
    type: str
    default: 10.244.0.0/16
  service_subnet:
    description: The Service CIDR.
    type: str
    default: 10.96.0.0/12
  dns_domain:
    description: The cluster DNS domain.
    type: str
    default: cluster.local
  node_addresses:
    description: Addresses of the cluster's nodes; neither subnet may contain one.
    type: list
    elements: str
    default: []
  cert_sans:
    description: Extra Subject Alternative Names of the API server certificate.
    type: list
    elements: str
    default: []
  cgroup_driver:
    description: The container runtime's cgroup driver, V(systemd) or V(cgroupfs); the kubelet gets the same.
    type: str
    default: systemd
  sandbox_image:
    description: The runtime's sandbox (pause) image; must be the one kubeadm of this minor expects with O(image_repository).
    type: str
    required: true
  kube_proxy_mode:
    description: V(iptables), V(ipvs) (needs the IPVS kernel modules; deprecated upstream since 1.35) or V(nftables).
    type: str
    default: iptables
  ipvs_scheduler:
    description: The IPVS scheduler (V(rr), V(wrr), V(sh), ...) in mode V(ipvs); empty keeps kube-proxy's default.
    type: str
    default: ""
  node_labels:
    description: Labels the kubelet registers its Node with (not C(node-role.kubernetes.io/*), which the kubelet may not set).
    type: dict
    default: {}
  node_taints:
    description: Taints of the Node (C(key), C(value), C(effect)); null keeps kubeadm's default, V([]) registers none.
    type: list
    elements: dict
  kubelet_config:
    description: Extra KubeletConfiguration fields, merged deeply.
    type: dict
    default: {}
  kube_proxy_config:
    description: Extra KubeProxyConfiguration fields, merged deeply.
    type: dict
    default: {}
  cluster_config:
    description: Extra ClusterConfiguration fields, merged deeply.
    type: dict
    default: {}
  apiserver_extra_args:
    description: Extra kube-apiserver flags (name without dashes -> value).
    type: dict
    default: {}
  controller_manager_extra_args:
    description: Extra kube-controller-manager flags.
    type: dict
    default: {}
  scheduler_extra_args:
    description: Extra kube-scheduler flags.
    type: dict
    default: {}
  kubelet_extra_args:
    description: Extra kubelet flags of this node.
    type: dict
    default: {}
  kubelet_swap:
    description: Let the kubelet run with swap on (C(failSwapOn=false), C(LimitedSwap)).
    type: bool
    default: false
  bootstrap_token:
    description: A bootstrap token C([a-z0-9]{6}.[a-z0-9]{16}); created by C(init), used by C(join).
    type: str
    default: ""
  bootstrap_token_ttl:
    description: Lifetime of the bootstrap token created at init.
    type: str
    default: 24h
  discovery_ca_cert_hashes:
    description: C(sha256:<hex>) pins of the cluster CA for C(join).
    type: list
    elements: str
    default: []
  certificate_key:
    description: The key that encrypts the uploaded control-plane certificates (64 hex digits).
    type: str
    default: ""
  cluster_name:
    description: The cluster name.
    type: str
    default: kubernetes
  config_dir:
    description: Directory of the rendered files on the node.
    type: str
    default: /etc/kubernetes/kubeadm
  kubeadm_binary:
    description: The kubeadm command used for C(kubeadm config validate); when it is not installed the step is skipped.
    type: str
    default: kubeadm
notes:
  - The schemas cover the Kubernetes minors listed in the collection README; C(tools/kube_schema.py) rebuilds them from upstream.
seealso:
  - module: kubeforge.cluster.cri_socket
  - module: kubeforge.cluster.node_doctor
"""

EXAMPLES = r"""
- name: Render the first control-plane node's kubeadm configuration
  kubeforge.cluster.kubeadm_config:
    kubernetes_version: 1.37.0
    node_role: init
    cri_socket: unix:///run/containerd/containerd.sock
    sandbox_image: registry.k8s.io/pause:3.10.2
    apiserver_proxy: true
    apiserver_bind_port: 5443
    pod_subnet: 10.244.0.0/16
    kubelet_config:
      evictionHard:
        memory.available: 200Mi
"""

RETURN = r"""
files:
  description: The rendered files, by name.
  returned: success
  type: dict
  sample:
    init.yaml:
      path: /etc/kubernetes/kubeadm/init.yaml
      changed: false
      validated_by_kubeadm: null
      kinds: [InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration]
pending:
  description: Files not rendered yet and what they wait for (a joining node without a bootstrap token).
  returned: success
  type: list
  elements: str
minor:
  description: The Kubernetes minor whose schemas were used.
  returned: success
  type: str
  sample: "1.37"
kubeadm_api:
  description: The kubeadm API version rendered.
  returned: success
  type: str
  sample: kubeadm.k8s.io/v1beta4
endpoint:
  description: The control-plane endpoint in the configuration.
  returned: success
  type: str
  sample: 127.0.0.1:6443
problems:
  description: Every problem found in the settings or by the schemas, each naming the variable to fix.
  returned: failure
  type: list
  elements: str
"""
