# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The schema validator, on the committed schemas of each supported minor (what kubeadm's strict decoder refuses)."""

from __future__ import annotations

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kubeadm_schema as schema

KUBELET = "kubelet.config.k8s.io/v1beta1"


def problems(document, minor="1.37"):
    return [str(p) for p in schema.validate_document(document, minor)]


def kubelet(**fields):
    return dict({"apiVersion": KUBELET, "kind": "KubeletConfiguration"}, **fields)


def test_supported_minors_and_api_versions():
    assert schema.supported_minors() == ["1.35", "1.36", "1.37"]
    assert sorted(schema.api_versions("1.36")) == [
        "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4", KUBELET, "kubeproxy.config.k8s.io/v1alpha1"]
    with pytest.raises(schema.SchemaNotFound, match="no schemas for Kubernetes 1.34 .there are schemas for 1.35, 1.36, 1.37."):
        schema.api_versions("1.34")


@pytest.mark.parametrize("minor", ["1.35", "1.36", "1.37"])
def test_a_valid_kubelet_configuration_passes(minor):
    assert problems(kubelet(cgroupDriver="systemd", failSwapOn=False, memorySwap={"swapBehavior": "LimitedSwap"},
                            evictionHard={"memory.available": "200Mi"}, syncFrequency="1m30s", maxPods=110,
                            registerWithTaints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}],
                            featureGates={"SomeGate": True}, logging={"format": "json", "flushFrequency": "5s", "verbosity": 2}),
                    minor) == []


def test_unknown_and_mistyped_fields_name_the_path_and_the_nearest_field():
    assert problems(kubelet(cgroupDriverr="systemd")) == ["KubeletConfiguration.cgroupDriverr: unknown field (did you mean cgroupDriver?)"]
    assert problems(kubelet(FailSwapOn=True)) == ["KubeletConfiguration.FailSwapOn: unknown field (did you mean failSwapOn?)"]
    assert problems(kubelet(failSwapOn="false")) == ['KubeletConfiguration.failSwapOn: must be boolean, got string "false"']
    assert problems(kubelet(maxPods=1.5)) == ["KubeletConfiguration.maxPods: must be integer, got number 1.5"]
    assert problems(kubelet(maxPods=True)) == ["KubeletConfiguration.maxPods: must be integer, got boolean true"]
    assert problems(kubelet(evictionHard=["memory.available<100Mi"])) == [
        'KubeletConfiguration.evictionHard: must be object, got array ["memory.available<100Mi"]']
    assert problems(kubelet(port=70000000000)) == ["KubeletConfiguration.port: 70000000000 is outside the range -2147483648..2147483647"]


def test_enums_formats_and_nested_lists():
    assert problems(kubelet(registerWithTaints=[{"key": "a", "effect": "NoSchedul"}])) == [
        'KubeletConfiguration.registerWithTaints[0].effect: "NoSchedul" is not one of "NoSchedule", "PreferNoSchedule", "NoExecute"']
    assert problems(kubelet(syncFrequency="90")) == ['KubeletConfiguration.syncFrequency: "90" is not a Go duration such as 90s, 5m or 1h30m']
    assert problems(kubelet(configMapAndSecretChangeDetectionStrategy="Poll")) == [
        'KubeletConfiguration.configMapAndSecretChangeDetectionStrategy: "Poll" is not one of "Get", "Cache", "Watch"']


def test_null_is_the_zero_value_everywhere():
    assert problems(kubelet(cgroupDriver=None, evictionHard=None, registerWithTaints=None)) == []


def test_the_minor_decides_which_fields_exist():
    document = kubelet(defaultPodSysctls={"net.ipv4.ip_unprivileged_port_start": "0"})
    assert problems(document, "1.37") == []
    assert problems(document, "1.36") == ["KubeletConfiguration.defaultPodSysctls: unknown field"]


def test_api_version_and_kind_must_fit_the_minor():
    assert problems({"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration"}, "1.37") == [
        "InitConfiguration: Kubernetes 1.37 does not read apiVersion kubeadm.k8s.io/v1beta3 (it reads kubeadm.k8s.io/v1beta4, "
        "kubelet.config.k8s.io/v1beta1, kubeproxy.config.k8s.io/v1alpha1)"]
    assert problems({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "KubeletConfiguration"}) == [
        "KubeletConfiguration: kubeadm.k8s.io/v1beta4 has no kind KubeletConfiguration (it has ClusterConfiguration, InitConfiguration, "
        "JoinConfiguration, ResetConfiguration, UpgradeConfiguration)"]
    assert problems({"kind": "InitConfiguration"}) == ["InitConfiguration: apiVersion and kind must both be set"]
    assert problems(["not", "a", "mapping"]) == ["(document): must be a mapping with apiVersion and kind, got array"]


def test_kubeadm_extra_args_shape_per_api_version():
    v1beta4 = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "apiServer": {"extraArgs": {"v": "4"}}}
    assert problems(v1beta4, "1.36") == ['ClusterConfiguration.apiServer.extraArgs: must be array, got object {"v": "4"}']
    v1beta3 = {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration",
               "apiServer": {"extraArgs": {"v": "4"}, "timeoutForControlPlane": "4m"}}
    assert problems(v1beta3, "1.36") == []
    v1beta4_ok = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                  "apiServer": {"extraArgs": [{"name": "v", "value": "4"}]}, "encryptionAlgorithm": "RSA-2048"}
    assert problems(v1beta4_ok) == []
    assert problems(dict(v1beta4_ok, encryptionAlgorithm="rsa")) == [
        'ClusterConfiguration.encryptionAlgorithm: "rsa" is not one of "ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"']


def test_bootstrap_token_and_duration_formats():
    init = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
            "bootstrapTokens": [{"token": "abcdef.0123456789abcdef", "ttl": "24h"}]}
    assert problems(init) == []
    init["bootstrapTokens"][0].update(token="ABCDEF.0123456789abcdef", ttl="1d")
    assert problems(init) == [
        'InitConfiguration.bootstrapTokens[0].token: "ABCDEF.0123456789abcdef" does not match ^[a-z0-9]{6}\\.[a-z0-9]{16}$',
        'InitConfiguration.bootstrapTokens[0].ttl: "1d" is not a Go duration such as 90s, 5m or 1h30m']
