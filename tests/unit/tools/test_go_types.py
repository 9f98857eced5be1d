# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/go_types.py: the Go declarations API type files use, read from snippets written like upstream's types.go."""

from __future__ import annotations

import go_types
import pytest

SNIPPET = r'''/*
Copyright header, as upstream files have one.
*/

// Package v1demo is a made-up API group version.
package v1demo

import (
    "encoding/json"

    corev1 "k8s.io/api/core/v1"
    metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
    "k8s.io/apimachinery/pkg/api/resource"
)

// Mode is an enum type.
type Mode string

// Its values; the untyped one belongs to no type.
const (
    // ModeFast is fast.
    ModeFast Mode = "fast"
    ModeSlow Mode = "slow"
    UntypedDefault = "ignored"
    MaxThings int32 = 42
)

const SingleLevel Level = 3

type Level int32

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// DemoConfiguration has one field of every shape.
type DemoConfiguration struct {
    metav1.TypeMeta `json:",inline"`

    // Name with a tag and options.
    Name string `json:"name,omitempty" datapolicy:"token"`
    Mode Mode `json:"mode"`
    Replicas *int32 `json:"replicas,omitempty"`
    Labels map[string]string `json:"labels,omitempty"`
    Taints []corev1.Taint `json:"taints"`
    Ports [2]uint16 `json:"ports,omitempty"`
    Raw json.RawMessage `json:"raw,omitempty"`
    Memory resource.Quantity `json:"memory,omitempty"`
    Nested struct {
        Inner bool `json:"inner"`
    } `json:"nested,omitempty"`
    Callback func(a, b int) (string, error) `json:"-"`
    First, Second string
    Embedded
    *Pointed `json:",inline"`
    private int
    Plain []string
    Opts map[string][]*Level `json:"opts,omitzero"`
}

// Embedded is inlined by encoding/json (no name in its tag).
type Embedded struct {
    Extra string `json:"extra"`
}

type Pointed struct {
    Deep bool `json:"deep"`
}

type Alias = Embedded

type (
    GroupedA string
    GroupedB []GroupedA
)

var ignored = map[string]int{"a": 1}

// MarshalJSON writes Level as text.
func (l Level) MarshalJSON() ([]byte, error) {
    return []byte(`"level"`), nil
}

func (p *Pointed) UnmarshalJSON(data []byte) error {
    if len(data) == 0 { return nil }
    return nil
}

func helper[T any](x T) T { return x }
'''


@pytest.fixture(scope="module")
def demo():
    return go_types.parse(SNIPPET)


def test_package_and_imports(demo):
    assert demo.package == "v1demo"
    assert demo.imports == {
        "json": "encoding/json", "corev1": "k8s.io/api/core/v1", "metav1": "k8s.io/apimachinery/pkg/apis/meta/v1",
        "resource": "k8s.io/apimachinery/pkg/api/resource",
    }


def test_typed_constants_become_the_types_values_untyped_ones_do_not(demo):
    assert demo.consts == {"Mode": ["fast", "slow"], "int32": [42], "Level": [3]}


def test_named_types_aliases_and_groups(demo):
    assert demo.types["Mode"] == ("name", "string")
    assert demo.types["Level"] == ("name", "int32")
    assert demo.types["GroupedB"] == ("slice", ("name", "GroupedA"))
    assert demo.types["Alias"] == ("name", "Embedded") and "Alias" in demo.aliases
    assert "ignored" not in demo.types and "helper" not in demo.types


def test_struct_fields_types_and_tags(demo):
    fields = {tuple(f.names) or ("<embedded %s>" % (f.type,),): f for f in demo.types["DemoConfiguration"][1]}
    assert fields[("Name",)].tag == 'json:"name,omitempty" datapolicy:"token"'
    assert fields[("Replicas",)].type == ("ptr", ("name", "int32"))
    assert fields[("Labels",)].type == ("map", ("name", "string"), ("name", "string"))
    assert fields[("Taints",)].type == ("slice", ("qual", "corev1", "Taint"))
    assert fields[("Ports",)].type == ("array", "2", ("name", "uint16"))
    assert fields[("Nested",)].type[0] == "struct" and fields[("Nested",)].type[1][0].names == ["Inner"]
    assert fields[("Callback",)].type == ("func",) and fields[("Callback",)].tag == 'json:"-"'
    assert fields[("First", "Second")].type == ("name", "string") and fields[("First", "Second")].tag == ""
    assert fields[("Opts",)].type == ("map", ("name", "string"), ("slice", ("ptr", ("name", "Level"))))
    embedded = [f for f in demo.types["DemoConfiguration"][1] if f.embedded]
    assert [(f.type, f.tag) for f in embedded] == [
        (("qual", "metav1", "TypeMeta"), 'json:",inline"'),
        (("name", "Embedded"), ""),
        (("ptr", ("name", "Pointed")), 'json:",inline"'),
    ]


def test_methods_with_their_own_json_are_noted(demo):
    assert demo.json_methods == {"Level": {"MarshalJSON"}, "Pointed": {"UnmarshalJSON"}}


def test_struct_tag_lookup():
    tag = 'json:"name,omitempty" yaml:"other" datapolicy:"token"'
    assert go_types.struct_tag(tag, "json") == "name,omitempty"
    assert go_types.struct_tag(tag, "datapolicy") == "token"
    assert go_types.struct_tag(tag, "protobuf") is None


def test_errors_name_the_line():
    with pytest.raises(go_types.GoSyntaxError, match="line 3: generic type List is not supported"):
        go_types.parse("package x\n\ntype List[T any] []T\n")
    with pytest.raises(go_types.GoSyntaxError, match="line 2: expected a type"):
        go_types.parse("package x\ntype Broken struct { Name = }\n")
    with pytest.raises(go_types.GoSyntaxError, match="unexpected character"):
        go_types.parse("package x\ntype A string @\n")
