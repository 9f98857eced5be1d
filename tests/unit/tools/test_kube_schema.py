# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kube_schema.py: JSON schemas from Go types written the way upstream's kubeadm, kubelet and core types are.

The snippets are shaped like the upstream declarations the schemas come from (kubeadm's v1beta3 map extraArgs and
v1beta4 name/value list, an inlined TypeMeta and an inlined embedded struct, typed enum constants, core/v1 Taint);
the last tests build from the repository's committed schema data and compare with upstream facts.
"""

from __future__ import annotations

import json
from pathlib import Path

import go_types
import kube_schema
import pytest

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "plugins" / "module_utils" / "kubeadm_schemas"

CORE = '''package v1
import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
type TaintEffect string
const (
    TaintEffectNoSchedule TaintEffect = "NoSchedule"
    TaintEffectPreferNoSchedule TaintEffect = "PreferNoSchedule"
    TaintEffectNoExecute TaintEffect = "NoExecute"
)
type Taint struct {
    Key string `json:"key" protobuf:"bytes,1,opt,name=key"`
    Value string `json:"value,omitempty"`
    Effect TaintEffect `json:"effect"`
    TimeAdded *metav1.Time `json:"timeAdded,omitempty"`
}
'''
KUBEADM_V1BETA3 = '''package v1beta3
import (
    corev1 "k8s.io/api/core/v1"
    metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)
type ClusterConfiguration struct {
    metav1.TypeMeta `json:",inline"`
    APIServer APIServer `json:"apiServer,omitempty"`
    FeatureGates map[string]bool `json:"featureGates,omitempty"`
}
type ControlPlaneComponent struct {
    ExtraArgs map[string]string `json:"extraArgs,omitempty"`
}
type APIServer struct {
    ControlPlaneComponent `json:",inline"`
    CertSANs []string `json:"certSANs,omitempty"`
    TimeoutForControlPlane *metav1.Duration `json:"timeoutForControlPlane,omitempty"`
}
type NodeRegistrationOptions struct {
    Taints []corev1.Taint `json:"taints"`
    KubeletExtraArgs map[string]string `json:"kubeletExtraArgs,omitempty"`
}
'''
KUBEADM_V1BETA4 = '''package v1beta4
import (
    corev1 "k8s.io/api/core/v1"
    metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)
type ClusterConfiguration struct {
    metav1.TypeMeta `json:""`
    APIServer APIServer `json:"apiServer,omitempty"`
    EncryptionAlgorithm EncryptionAlgorithmType `json:"encryptionAlgorithm,omitempty"`
    BindPort int32 `json:"bindPort,omitempty"`
    Untagged []string
    Hidden string `json:"-"`
    internal string
}
type ControlPlaneComponent struct {
    ExtraArgs []Arg `json:"extraArgs,omitempty"`
    CertSANs string `json:"certSANs"`
}
type APIServer struct {
    ControlPlaneComponent `json:""`
    CertSANs []string `json:"certSANs,omitempty"`
}
type Arg struct {
    Name  string `json:"name"`
    Value string `json:"value"`
}
type EncryptionAlgorithmType string
const (
    EncryptionAlgorithmECDSAP256 EncryptionAlgorithmType = "ECDSA-P256"
    EncryptionAlgorithmRSA2048 EncryptionAlgorithmType = "RSA-2048"
)
type NodeRegistrationOptions struct {
    Taints []corev1.Taint `json:"taints"`
    ImagePullSerial *bool `json:"imagePullSerial,omitempty"`
}
'''
PREFIX = kube_schema.KUBEADM_PREFIX


def build(import_path, kinds, sources):
    packages = {path: go_types.parse(text) for path, text in sources.items()}
    return kube_schema.SchemaBuilder(packages).schema("kubeadm.k8s.io", import_path.rsplit("/", 1)[-1], import_path, kinds)


def test_v1beta4_argument_list_inlined_embeds_enums_and_go_rules():
    schema = build(PREFIX + "kubeadm/v1beta4", ["ClusterConfiguration"],
                   {PREFIX + "kubeadm/v1beta4": KUBEADM_V1BETA4, "k8s.io/api/core/v1": CORE})
    defs = schema["$defs"]
    cluster = defs["kubeadm.v1beta4.ClusterConfiguration"]
    assert schema["kinds"] == {"ClusterConfiguration": {"$ref": "#/$defs/kubeadm.v1beta4.ClusterConfiguration"}}
    assert cluster["additionalProperties"] is False
    # TypeMeta with the 1.37 spelling json:"" is inlined; json:"-" and unexported fields are not part of the API;
    # an untagged exported field keeps its Go name
    assert sorted(cluster["properties"]) == ["Untagged", "apiServer", "apiVersion", "bindPort", "encryptionAlgorithm", "kind"]
    assert cluster["properties"]["bindPort"] == {"type": "integer", "minimum": -2 ** 31, "maximum": 2 ** 31 - 1, "x-omitempty": True}
    assert defs["kubeadm.v1beta4.EncryptionAlgorithmType"]["enum"] == ["ECDSA-P256", "RSA-2048"]
    server = defs["kubeadm.v1beta4.APIServer"]["properties"]
    # the outer struct's certSANs wins over the embedded struct's field of the same name
    assert server["certSANs"] == {"type": "array", "items": {"type": "string"}, "x-omitempty": True}
    assert server["extraArgs"]["items"] == {"$ref": "#/$defs/kubeadm.v1beta4.Arg"}
    assert defs["kubeadm.v1beta4.Arg"]["properties"] == {"name": {"type": "string"}, "value": {"type": "string"}}
    assert "kubeadm.v1beta4.NodeRegistrationOptions" not in defs  # only what the kinds reach


def test_v1beta3_extra_args_are_a_map_and_core_types_resolve_across_packages():
    sources = {PREFIX + "kubeadm/v1beta3": KUBEADM_V1BETA3, "k8s.io/api/core/v1": CORE}
    schema = build(PREFIX + "kubeadm/v1beta3", ["ClusterConfiguration"], sources)
    server = schema["$defs"]["kubeadm.v1beta3.APIServer"]["properties"]
    assert server["extraArgs"] == {"type": "object", "additionalProperties": {"type": "string"}, "x-omitempty": True}
    assert schema["$defs"][server["timeoutForControlPlane"]["$ref"].split("/")[-1]]["format"] == "duration"
    packages = {path: go_types.parse(text) for path, text in sources.items()}
    builder = kube_schema.SchemaBuilder(packages)
    nodes = builder.schema("kubeadm.k8s.io", "v1beta3", PREFIX + "kubeadm/v1beta3", ["NodeRegistrationOptions"])
    taint = nodes["$defs"]["api.core.v1.Taint"]
    assert taint["properties"]["key"] == {"type": "string"}  # no omitempty: no annotation
    assert nodes["$defs"]["api.core.v1.TaintEffect"]["enum"] == ["NoSchedule", "PreferNoSchedule", "NoExecute"]
    assert nodes["$defs"]["apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"


def test_types_that_decode_themselves_need_a_known_json_form():
    source = '''package v1
type Flexible struct { Seconds int `json:"seconds"` }
func (f *Flexible) UnmarshalJSON(b []byte) error { return nil }
type Config struct { Flush Flexible `json:"flush"` }
'''
    packages = {"k8s.io/demo/v1": go_types.parse(source)}
    with pytest.raises(kube_schema.BuildError, match="k8s.io/demo/v1.Flexible decodes itself"):
        kube_schema.SchemaBuilder(packages).schema("demo", "v1", "k8s.io/demo/v1", ["Config"])
    known = {"k8s.io/demo/v1.Flexible": {"type": ["string", "integer"]}}
    schema = kube_schema.SchemaBuilder(packages, known=known).schema("demo", "v1", "k8s.io/demo/v1", ["Config"])
    assert schema["$defs"]["demo.v1.Flexible"]["type"] == ["string", "integer"]


def test_unresolvable_names_are_errors_naming_them():
    packages = {"k8s.io/demo/v1": go_types.parse('package v1\nimport x "k8s.io/elsewhere"\ntype C struct { A x.Thing `json:"a"` }\n')}
    with pytest.raises(kube_schema.BuildError, match="no Go source given for package k8s.io/elsewhere"):
        kube_schema.SchemaBuilder(packages).schema("demo", "v1", "k8s.io/demo/v1", ["C"])
    with pytest.raises(kube_schema.BuildError, match="has no type Missing"):
        kube_schema.SchemaBuilder(packages).schema("demo", "v1", "k8s.io/demo/v1", ["Missing"])


# --- the committed schema data, built by this tool from upstream -------------------------------------------------
def load(minor, name):
    return json.loads((SCHEMAS / ("v" + minor) / name).read_text())


@pytest.mark.parametrize("minor", ["1.35", "1.36", "1.37"])
def test_committed_schemas_record_their_upstream_sources(minor):
    schema = load(minor, "kubelet.config.k8s.io_v1beta1.json")
    sources = {s["repository"]: s for s in schema["x-upstream"]}
    assert sources["kubernetes/kubelet"]["path"] == "config/v1beta1/types.go"
    assert len(sources["kubernetes/kubelet"]["commit"]) == 40
    assert sources["kubernetes/kubelet"]["ref"] == kube_schema.MINORS[minor]["ref"]


def test_committed_schemas_follow_upstream_per_minor():
    files = {minor: sorted(p.name for p in (SCHEMAS / ("v" + minor)).iterdir()) for minor in ("1.35", "1.36", "1.37")}
    assert "kubeadm.k8s.io_v1beta3.json" in files["1.36"] and "kubeadm.k8s.io_v1beta3.json" not in files["1.37"]  # removed in 1.37
    kubelet = {m: set(load(m, "kubelet.config.k8s.io_v1beta1.json")["$defs"]["kubelet.config.v1beta1.KubeletConfiguration"]["properties"])
               for m in ("1.36", "1.37")}
    assert "defaultPodSysctls" in kubelet["1.37"] - kubelet["1.36"]  # KEP-5996, new in 1.37
    v1beta4 = load("1.37", "kubeadm.k8s.io_v1beta4.json")["$defs"]
    assert v1beta4["kubeadm.v1beta4.ControlPlaneComponent"]["properties"]["extraArgs"]["type"] == "array"
    v1beta3 = load("1.36", "kubeadm.k8s.io_v1beta3.json")["$defs"]
    assert v1beta3["kubeadm.v1beta3.ControlPlaneComponent"]["properties"]["extraArgs"]["type"] == "object"
    assert "timeoutForControlPlane" in v1beta3["kubeadm.v1beta3.APIServer"]["properties"]  # moved to Timeouts in v1beta4
    assert "timeouts" in v1beta4["kubeadm.v1beta4.InitConfiguration"]["properties"]
