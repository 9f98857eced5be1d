# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering kubeadm's configuration: every supported minor and API version, validated against the schemas;
bad settings fail before anything is written, naming the role variable to fix."""

from __future__ import annotations

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kubeadm_schema as schema
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_config import render
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_settings import SettingsError, argument_spec
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_versions import MINORS, expected_pause_image

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "ab" * 32
CERT_KEY = "0f" * 32
VERSIONS = {"1.35": "1.35.7", "1.36": "1.36.3", "1.37": "1.37.0"}


def settings(**overrides):
    """The action plugin's defaults (from its argument spec) plus a node of a two-node lab."""
    values = {name: spec.get("default") for name, spec in argument_spec().items()}
    values.update(kubernetes_version="1.37.0", node_role="init", node_name="node1", cri_socket="unix:///run/containerd/containerd.sock",
                  sandbox_image=expected_pause_image("1.37"), first_control_plane_address="10.1.0.11",
                  node_addresses=["10.1.0.11", "10.1.0.12"])
    values.update(overrides)
    return values


def problems(**overrides):
    with pytest.raises(SettingsError) as raised:
        render(settings(**overrides))
    return ["%s: %s" % problem for problem in raised.value.problems]


def by_kind(rendered, name):
    return {doc["kind"]: doc for doc in rendered["files"][name]}


@pytest.mark.parametrize("minor", sorted(MINORS))
@pytest.mark.parametrize("api", ["v1beta3", "v1beta4"])
def test_every_minor_and_api_version_renders_schema_valid_documents(minor, api):
    options = settings(kubernetes_version=VERSIONS[minor], api_version=api, sandbox_image=expected_pause_image(minor),
                       apiserver_extra_args={"audit-log-maxage": 30, "anonymous-auth": False}, kubelet_extra_args={"v": 2},
                       node_labels={"topology.kubernetes.io/zone": "a"}, bootstrap_token=TOKEN, certificate_key=CERT_KEY,
                       kubelet_config={"maxPods": 200}, kube_proxy_config={"conntrack": {"maxPerCore": 0}})
    if api not in MINORS[minor]["kubeadm_apis"]:
        assert problems(**{k: v for k, v in options.items() if k != "node_role"}, node_role="init") == [
            "kubeadm_config_api_version: kubeadm 1.37 does not read kubeadm.k8s.io/v1beta3 (removed in 1.37); use v1beta4 or auto"]
        return
    rendered = render(options)
    docs = by_kind(rendered, "init.yaml")
    assert list(docs) == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]
    assert rendered["kubeadm_api"] == "kubeadm.k8s.io/" + api
    assert schema.validate_documents(rendered["files"]["init.yaml"], minor) == []
    cluster = docs["ClusterConfiguration"]
    assert cluster["kubernetesVersion"] == "v" + VERSIONS[minor]
    assert cluster["controlPlaneEndpoint"] == "10.1.0.11:6443"
    if api == "v1beta4":  # flags as name/value pairs, in name order
        assert cluster["apiServer"]["extraArgs"] == [{"name": "anonymous-auth", "value": "false"}, {"name": "audit-log-maxage", "value": "30"}]
        assert docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"] == [
            {"name": "node-labels", "value": "topology.kubernetes.io/zone=a"}, {"name": "v", "value": "2"}]
    else:
        assert cluster["apiServer"]["extraArgs"] == {"anonymous-auth": "false", "audit-log-maxage": "30"}
        assert rendered["warnings"] == ["kubeadm.k8s.io/v1beta3 is deprecated and kubeadm 1.37 removes it; set kubeadm_config_api_version "
                                        "to auto (v1beta4)"]
    assert docs["KubeletConfiguration"] == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                                            "cgroupDriver": "systemd", "failSwapOn": True, "maxPods": 200}


def test_apiserver_proxy_endpoint_bind_port_and_join_documents():
    common = dict(apiserver_proxy=True, apiserver_bind_port=5443, bootstrap_token=TOKEN, discovery_ca_cert_hashes=[CA_HASH],
                  certificate_key=CERT_KEY, control_plane_count=3)
    init = by_kind(render(settings(**common)), "init.yaml")
    assert init["ClusterConfiguration"]["controlPlaneEndpoint"] == "127.0.0.1:6443"
    assert init["InitConfiguration"]["localAPIEndpoint"] == {"bindPort": 5443}
    assert init["InitConfiguration"]["certificateKey"] == CERT_KEY
    assert init["InitConfiguration"]["bootstrapTokens"][0]["token"] == TOKEN
    joined = render(settings(node_role="control-plane", node_name="node2", advertise_address="10.1.0.12", **common))
    join = by_kind(joined, "join.yaml")["JoinConfiguration"]
    assert join["discovery"] == {"bootstrapToken": {"apiServerEndpoint": "127.0.0.1:6443", "token": TOKEN, "caCertHashes": [CA_HASH]}}
    assert join["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "10.1.0.12", "bindPort": 5443}, "certificateKey": CERT_KEY}
    worker = by_kind(render(settings(node_role="worker", **common)), "join.yaml")["JoinConfiguration"]
    assert "controlPlane" not in worker and worker["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert schema.validate_documents([join, worker], "1.37") == []


def test_a_joining_node_waits_for_token_and_ca_hashes():
    rendered = render(settings(node_role="worker", bootstrap_token=TOKEN))
    assert rendered["files"] == {}
    assert rendered["pending"] == ["join.yaml waits for kubeadm_discovery_ca_cert_hashes (set after kubeadm init, by kubeadm part 2 or by hand)"]


def test_external_etcd_mirror_subnets_taints_and_ipvs():
    rendered = render(settings(etcd_mode="external", etcd_endpoints=["https://10.1.0.21:2379", "https://10.1.0.22:2379"],
                               etcd_ca_file="/etc/etcd/ssl/ca.pem", etcd_cert_file="/etc/etcd/ssl/client.pem",
                               etcd_key_file="/etc/etcd/ssl/client-key.pem", image_repository="registry.example:5000/k8s",
                               sandbox_image="registry.example:5000/k8s/pause:3.10.2", pod_subnet="10.88.0.0/16,fd00:88::/56",
                               service_subnet="10.66.0.0/16,fd00:66::/112", node_taints=[], kube_proxy_mode="ipvs", ipvs_scheduler="wrr",
                               control_plane_endpoint="k8s-api.example:6443"))
    docs = by_kind(rendered, "init.yaml")
    assert docs["ClusterConfiguration"]["etcd"] == {"external": {
        "endpoints": ["https://10.1.0.21:2379", "https://10.1.0.22:2379"], "caFile": "/etc/etcd/ssl/ca.pem",
        "certFile": "/etc/etcd/ssl/client.pem", "keyFile": "/etc/etcd/ssl/client-key.pem"}}
    assert docs["ClusterConfiguration"]["imageRepository"] == "registry.example:5000/k8s"
    assert docs["ClusterConfiguration"]["controlPlaneEndpoint"] == "k8s-api.example:6443"
    assert docs["InitConfiguration"]["nodeRegistration"]["taints"] == []
    assert docs["KubeProxyConfiguration"] == {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                                              "mode": "ipvs", "clusterCIDR": "10.88.0.0/16,fd00:88::/56", "ipvs": {"scheduler": "wrr"}}
    assert [m["name"] for m in rendered["kernel_modules"]] == ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
    assert any("ipvs mode is deprecated upstream since 1.35" in w for w in rendered["warnings"])


def test_several_control_planes_on_the_first_ones_address_get_a_warning():
    rendered = render(settings(control_plane_count=3))
    assert rendered["warnings"] == [
        "3 control-plane nodes use the first one's address 10.1.0.11:6443 as endpoint: that node is a single point of failure; "
        "set kubeadm_control_plane_endpoint to a VIP/DNS name or enable kubeadm_apiserver_proxy"]


# --- bad input: clear errors naming the variable, before anything is written or installed ---------------------------
def test_unsupported_kubernetes_versions():
    assert problems(kubernetes_version="1.34.2") == [
        "kubeadm_kubernetes_version: Kubernetes 1.34.2 is not supported: kubeforge.cluster renders and validates the configuration of "
        "Kubernetes 1.35, 1.36, 1.37 (the three newest minors); choose one of those"]
    assert problems(kubernetes_version="1.38") == [
        "kubeadm_kubernetes_version: '1.38' is not a Kubernetes release version like 1.37.0"]


def test_overlapping_subnets_and_node_network():
    assert problems(pod_subnet="10.96.0.0/16") == [
        "kubeadm_pod_subnet: 10.96.0.0/16 overlaps kubeadm_service_subnet 10.96.0.0/12: pod and Service addresses would collide; "
        "choose disjoint ranges"]
    assert problems(pod_subnet="10.1.0.0/16") == [
        "kubeadm_pod_subnet: 10.1.0.0/16 contains the node address 10.1.0.11: routes to pods/Services would capture node traffic; "
        "choose a range outside the node network",
        "kubeadm_pod_subnet: 10.1.0.0/16 contains the node address 10.1.0.12: routes to pods/Services would capture node traffic; "
        "choose a range outside the node network"]
    assert problems(service_subnet="10.96.0/12") == [
        "kubeadm_service_subnet: '10.96.0/12' is not a CIDR such as 10.244.0.0/16 (dual-stack: two CIDRs separated by a comma)",
        "kubeadm_service_subnet: must be set, e.g. 10.96.0.0/12"]


def test_sandbox_image_must_be_the_one_kubeadm_expects():
    assert problems(sandbox_image="registry.k8s.io/pause:3.10") == [
        "kubeforge_sandbox_image: 'registry.k8s.io/pause:3.10' differs from the pause image kubeadm 1.37 expects, "
        "registry.k8s.io/pause:3.10.2 (from kubeadm_image_repository); the runtime and kubeadm must use one image: "
        "set kubeforge_sandbox_image to registry.k8s.io/pause:3.10.2"]


def test_endpoint_proxy_and_etcd_contradictions():
    assert problems(apiserver_proxy=True, control_plane_endpoint="10.1.0.100:6443", apiserver_bind_port=6443) == [
        "kubeadm_control_plane_endpoint: 10.1.0.100:6443 while the apiserver proxy is used: leave it empty or set it to the proxy's "
        "127.0.0.1:6443 (every node reaches the control plane through its local proxy)",
        "kubeadm_apiserver_bind_port: 6443 is the port the local apiserver proxy listens on (127.0.0.1:6443): bind the apiserver to the "
        "proxy's backend port (apiserver_proxy_backend_port, 5443)"]
    assert problems(etcd_mode="external", etcd_endpoints=["10.1.0.21:2379"], etcd_ca_file="ca.pem") == [
        "kubeadm_etcd_external_endpoints: '10.1.0.21:2379' is not a client URL such as https://10.0.0.11:2379",
        "kubeadm_etcd_ca_file: must be the absolute path of the etcd client CA certificate on the control-plane nodes (got 'ca.pem')",
        "kubeadm_etcd_cert_file: must be the absolute path of the etcd client certificate on the control-plane nodes (got '')",
        "kubeadm_etcd_key_file: must be the absolute path of the etcd client key on the control-plane nodes (got '')"]


def test_runtime_settings():
    assert problems(cgroup_driver="systemd-cgroup", kube_proxy_mode="userspace", cri_socket="/run/containerd/containerd.sock") == [
        "kubeforge_cgroup_driver: must be systemd or cgroupfs, got 'systemd-cgroup'",
        "kubeadm_kube_proxy_mode: must be one of iptables, ipvs, nftables, got 'userspace'",
        "kubeforge_cri_socket: must be the node's CRI endpoint as unix:///path (kubeforge.cluster.cri_socket finds it), got "
        "'/run/containerd/containerd.sock'"]


def test_labels_the_kubelet_may_not_set_and_owned_settings():
    assert problems(node_labels={"node-role.kubernetes.io/worker": ""}) == [
        "kubeadm_node_labels: the kubelet may not set node-role.kubernetes.io/worker on its own Node (NodeRestriction refuses "
        "kubernetes.io/k8s.io labels such as node-role.kubernetes.io/*); label the node with kubectl after it joined, or use another prefix"]
    assert problems(kubelet_config={"cgroupDriver": "cgroupfs"}, kube_proxy_config={"mode": "ipvs"},
                    kubelet_extra_args={"node-labels": "a=b"}) == [
        "kubeadm_kubelet_config: sets cgroupDriver, which kubeforge_cgroup_driver owns: set kubeforge_cgroup_driver instead",
        "kubeadm_kube_proxy_config: sets mode, which kubeadm_kube_proxy_mode owns: set kubeadm_kube_proxy_mode instead",
        "kubeadm_kubelet_extra_args: sets node-labels, which kubeadm_node_labels owns: set kubeadm_node_labels instead"]


def test_schema_errors_name_the_variable_that_produced_the_field():
    assert problems(kubelet_config={"evictionHardd": {"memory.available": "1Gi"}, "syncFrequency": "1 minute"},
                    kube_proxy_config={"ipvs": {"syncPeriod": 30}},
                    cluster_config={"apiServer": {"certSANS": ["x"]}}) == [
        "kubeadm_cluster_config: ClusterConfiguration.apiServer.certSANS: unknown field (did you mean certSANs?)",
        "kubeadm_kubelet_config: KubeletConfiguration.evictionHardd: unknown field (did you mean evictionHard?)",
        'kubeadm_kubelet_config: KubeletConfiguration.syncFrequency: "1 minute" is not a Go duration such as 90s, 5m or 1h30m',
        "kubeadm_kube_proxy_config: KubeProxyConfiguration.ipvs.syncPeriod: must be string (Duration), got integer 30"]
    assert problems(node_taints=[{"key": "a", "effect": "NoSchedul"}]) == [
        'kubeadm_node_taints: InitConfiguration.nodeRegistration.taints[0].effect: "NoSchedul" is not one of "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"']


def test_secrets_are_checked_but_never_quoted():
    found = problems(bootstrap_token="secret-token-value", certificate_key="not-hex", discovery_ca_cert_hashes=["abc"])
    assert found == [
        "kubeadm_bootstrap_token: is not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16} (kubeadm token generate makes one)",
        "kubeadm_discovery_ca_cert_hashes: 'abc' is not sha256:<64 hex digits> (kubeadm prints it after init)",
        "kubeadm_certificate_key: is not 64 hex digits (kubeadm certs certificate-key makes one)"]
    assert not any("secret-token-value" in line or "not-hex" in line for line in found)
