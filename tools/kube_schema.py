# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the JSON schemas of kubeadm, kubelet and kube-proxy configuration types from upstream Go source.

The schemas under ``plugins/module_utils/kubeadm_schemas/`` are data made by this tool; the module util
``_kubeadm_schema`` validates rendered documents against them. Each schema records where every Go file
came from (repository, ref, commit, path).

What the Go source decides (``encoding/json`` rules as Kubernetes' strict decoder applies them):
field names from ``json`` tags (an untagged exported field keeps its Go name; ``json:"-"`` and unexported
fields are not part of the API), ``omitempty``/``omitzero`` (kept as the annotation ``x-omitempty``),
embedded structs with an empty tag name are inlined, pointers/slices/maps/arrays, Go basic types with
their integer ranges, and typed string constants declared next to a named type become that type's
``enum``. Types with their own JSON (un)marshaller are taken from ``KNOWN_TYPES`` (the struct fields of
such types say nothing about their JSON form); a custom unmarshaller without an entry is an error.

    python3 tools/kube_schema.py build --minor 1.37 --mirrors /work/.mirror --kubernetes-src DIR \\
        --out plugins/module_utils/kubeadm_schemas

``--mirrors`` holds git mirrors of the published staging repositories (``kubernetes+kubelet/repo`` ...);
``--kubernetes-src`` is a kubernetes/kubernetes checkout (read with ``git show COMMIT:PATH``) or a tree of
the kubeadm type files at the recorded paths.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import go_types  # noqa: E402

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KUBEADM_PREFIX = "k8s.io/kubernetes/cmd/kubeadm/app/apis/"

# Types whose JSON form is not their Go struct (own MarshalJSON/UnmarshalJSON) or lives outside the parsed files.
_DURATION = {"type": "string", "format": "duration"}
KNOWN_TYPES = {
    "k8s.io/apimachinery/pkg/apis/meta/v1.TypeMeta": {
        "type": "object", "additionalProperties": False,
        "properties": {"apiVersion": {"type": "string", "x-omitempty": True}, "kind": {"type": "string", "x-omitempty": True}},
    },
    "k8s.io/apimachinery/pkg/apis/meta/v1.Duration": _DURATION,
    "k8s.io/apimachinery/pkg/apis/meta/v1.Time": {"type": "string", "format": "date-time"},
    "k8s.io/apimachinery/pkg/api/resource.Quantity": {"type": ["string", "integer", "number"], "format": "quantity"},
    "k8s.io/apimachinery/pkg/api/resource.QuantityValue": {"type": ["string", "integer", "number"], "format": "quantity"},
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString": {"type": ["string", "integer"]},
    "k8s.io/apimachinery/pkg/types.UID": {"type": "string"},
    "k8s.io/apimachinery/pkg/runtime.RawExtension": {},
    "encoding/json.RawMessage": {},
    "time.Duration": {"type": "integer"},
    # MarshalJSON writes "abcdef.0123456789abcdef"
    KUBEADM_PREFIX + "bootstraptoken/v1.BootstrapTokenString": {"type": "string", "pattern": "^[a-z0-9]{6}\\.[a-z0-9]{16}$"},
    # UnmarshalJSON takes a duration string or integer nanoseconds
    "k8s.io/component-base/logs/api/v1.TimeOrMetaDuration": {"type": ["string", "integer"], "format": "duration"},
}

_INTEGERS = {
    "int8": (-2 ** 7, 2 ** 7 - 1), "int16": (-2 ** 15, 2 ** 15 - 1), "int32": (-2 ** 31, 2 ** 31 - 1),
    "int64": (-2 ** 63, 2 ** 63 - 1), "int": (-2 ** 63, 2 ** 63 - 1), "uint8": (0, 2 ** 8 - 1), "byte": (0, 255),
    "uint16": (0, 2 ** 16 - 1), "uint32": (0, 2 ** 32 - 1), "uint64": (0, 2 ** 64 - 1), "uint": (0, 2 ** 64 - 1),
    "rune": (-2 ** 31, 2 ** 31 - 1), "uintptr": (0, 2 ** 64 - 1),
}
_BASIC = {"string": {"type": "string"}, "bool": {"type": "boolean"}, "float32": {"type": "number"},
          "float64": {"type": "number"}, "any": {}, "error": {}}

# Published staging repositories: import path -> (mirror name, file in the repository).
STAGING_FILES = {
    "k8s.io/kubelet/config/v1beta1": ("kubelet", "config/v1beta1/types.go"),
    "k8s.io/kube-proxy/config/v1alpha1": ("kube-proxy", "config/v1alpha1/types.go"),
    "k8s.io/api/core/v1": ("api", "core/v1/types.go"),
    "k8s.io/component-base/logs/api/v1": ("component-base", "logs/api/v1/types.go"),
    "k8s.io/component-base/tracing/api/v1": ("component-base", "tracing/api/v1/types.go"),
    "k8s.io/component-base/config/v1alpha1": ("component-base", "config/v1alpha1/types.go"),
}
# kubeadm's types are not published on their own: kubernetes/kubernetes path and the commit they were read at.
# These are the newest revisions of those files the build could reach (see docs/kubeadm.md, "Schemas").
KUBEADM_FILES = {
    KUBEADM_PREFIX + "kubeadm/v1beta4": ("cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go", "1329935739c3aa007d23cb9a4dadfee9d59ff79b"),
    KUBEADM_PREFIX + "kubeadm/v1beta3": ("cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go", "428c3fe9540a2cbe8daf4645879a87b30bbf1d02"),
    KUBEADM_PREFIX + "bootstraptoken/v1": ("cmd/kubeadm/app/apis/bootstraptoken/v1/types.go", "95f08499d652a6211121d8af35f470609217c730"),
}
# Per Kubernetes minor: the staging repositories' ref and the API versions of its kubeadm.
MINORS = {
    "1.35": {"ref": "kubernetes-1.35.7", "kubeadm": ["v1beta3", "v1beta4"]},
    "1.36": {"ref": "kubernetes-1.36.3", "kubeadm": ["v1beta3", "v1beta4"]},
    # No v1.37.0 tag in the reachable mirrors: master at the v1.37 code freeze (2026-07-21..24), after v1.37.0-beta.0.
    "1.37": {"ref": "master", "kubeadm": ["v1beta4"]},
}
APIS = {
    ("kubeadm.k8s.io", "v1beta4"): (KUBEADM_PREFIX + "kubeadm/v1beta4",
                                    ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "ResetConfiguration",
                                     "UpgradeConfiguration"]),
    ("kubeadm.k8s.io", "v1beta3"): (KUBEADM_PREFIX + "kubeadm/v1beta3", ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration"]),
    ("kubelet.config.k8s.io", "v1beta1"): ("k8s.io/kubelet/config/v1beta1", ["KubeletConfiguration"]),
    ("kubeproxy.config.k8s.io", "v1alpha1"): ("k8s.io/kube-proxy/config/v1alpha1", ["KubeProxyConfiguration"]),
}


class BuildError(Exception):
    """A type the builder cannot describe; the message names it and the reason."""


def definition_name(import_path, type_name):
    """``kubeadm.v1beta4.ClusterConfiguration``, ``kubelet.config.v1beta1.KubeletConfiguration``, ``api.core.v1.Taint``."""
    short = import_path[len(KUBEADM_PREFIX):] if import_path.startswith(KUBEADM_PREFIX) else import_path
    if short.startswith("k8s.io/"):
        short = short[len("k8s.io/"):]
    return "%s.%s" % (short.replace("/", "."), type_name)


class SchemaBuilder:
    """Turns parsed Go files (``{import path: GoFile}``) into JSON schema definitions."""

    def __init__(self, packages, known=None):
        self.packages = packages
        self.known = KNOWN_TYPES if known is None else known
        self.definitions = {}

    def schema(self, group, version, import_path, kinds, upstream=None):
        """A schema document whose ``kinds`` map each kind to its definition."""
        roots = {}
        for kind in kinds:
            if kind not in self._package(import_path).types:
                raise BuildError("%s has no type %s" % (import_path, kind))
            roots[kind] = {"$ref": self._ref(import_path, kind)}
        return {
            "$schema": SCHEMA_DIALECT,
            "x-api-version": "%s/%s" % (group, version),
            "x-upstream": upstream or [],
            "kinds": roots,
            "$defs": {name: self.definitions[name] for name in sorted(self._reachable(roots.values()))},
        }

    def _reachable(self, schemas):
        """Names of the definitions the given schemas refer to, directly or through other definitions."""
        seen = set()
        pending = list(schemas)
        while pending:
            node = pending.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if ref and ref.split("/")[-1] not in seen:
                    name = ref.split("/")[-1]
                    seen.add(name)
                    pending.append(self.definitions[name])
                pending.extend(value for key, value in node.items() if key != "$ref")
            elif isinstance(node, list):
                pending.extend(node)
        return seen

    # --- resolution ---------------------------------------------------------------------------
    def _package(self, import_path):
        try:
            return self.packages[import_path]
        except KeyError:
            raise BuildError("no Go source given for package %s" % import_path) from None

    def _ref(self, import_path, type_name):
        name = definition_name(import_path, type_name)
        if name not in self.definitions:
            self.definitions[name] = None  # placeholder: breaks cycles
            self.definitions[name] = self._named(import_path, type_name)
        return "#/$defs/" + name

    def _named(self, import_path, type_name):
        qualified = "%s.%s" % (import_path, type_name)
        if qualified in self.known:
            return dict(self.known[qualified], **{"x-go-type": qualified})
        go_file = self._package(import_path)
        if type_name not in go_file.types:
            raise BuildError("type %s is not declared in the Go source given for %s" % (type_name, import_path))
        if go_file.json_methods.get(type_name, set()) & {"UnmarshalJSON", "UnmarshalText"}:
            raise BuildError("type %s decodes itself (UnmarshalJSON/UnmarshalText): describe its JSON form in KNOWN_TYPES"
                             % qualified)
        expression = go_file.types[type_name]
        schema = dict(self._expression(import_path, expression))
        values = go_file.consts.get(type_name)
        if values and schema.get("type") in ("string", "integer"):
            schema["enum"] = sorted(set(values), key=values.index)
        schema["x-go-type"] = qualified
        return schema

    def _resolve_qualified(self, import_path, alias):
        imports = self._package(import_path).imports
        if alias not in imports:
            raise BuildError("package alias %s is not imported by %s" % (alias, import_path))
        return imports[alias]

    def _expression(self, import_path, expression):
        kind = expression[0]
        if kind == "name":
            name = expression[1]
            if name in _BASIC:
                return _BASIC[name]
            if name in _INTEGERS:
                low, high = _INTEGERS[name]
                return {"type": "integer", "minimum": low, "maximum": high}
            return {"$ref": self._ref(import_path, name)}
        if kind == "qual":
            target = self._resolve_qualified(import_path, expression[1])
            qualified = "%s.%s" % (target, expression[2])
            if qualified in self.known and target not in self.packages:
                name = definition_name(target, expression[2])
                self.definitions.setdefault(name, dict(self.known[qualified], **{"x-go-type": qualified}))
                return {"$ref": "#/$defs/" + name}
            return {"$ref": self._ref(target, expression[2])}
        if kind == "ptr":
            return self._expression(import_path, expression[1])
        if kind in ("slice", "array"):
            element = expression[-1]
            if element == ("name", "byte"):
                return {"type": "string", "contentEncoding": "base64"}
            return {"type": "array", "items": self._expression(import_path, element)}
        if kind == "map":
            return {"type": "object", "additionalProperties": self._expression(import_path, expression[2])}
        if kind == "struct":
            return self._struct(import_path, expression[1])
        if kind == "interface":
            return {}
        raise BuildError("%s: a %s type has no JSON form" % (import_path, kind))

    def _struct(self, import_path, fields):
        properties = {}
        inlined = []
        for field in fields:
            tag = go_types.struct_tag(field.tag, "json")
            name, _sep, options = (tag or "").partition(",")
            if name == "-" and not options:
                continue
            option_set = set(options.split(",")) if options else set()
            if field.embedded and not name:
                inlined.append(self._embedded_properties(import_path, field.type))
                continue
            go_names = field.names or [_type_identifier(field.type)]
            for go_name in go_names:
                if not go_name[:1].isupper():
                    continue  # unexported: not part of the JSON form
                schema = dict(self._expression(import_path, field.type))
                if "string" in option_set and schema.get("type") in ("integer", "number", "boolean"):
                    schema = {"type": "string"}
                if option_set & {"omitempty", "omitzero"}:
                    schema["x-omitempty"] = True
                properties[name or go_name] = schema
        # Fields of the outer struct win over promoted ones (encoding/json's shallowest-field rule).
        for promoted in inlined:
            for key, value in promoted.items():
                properties.setdefault(key, value)
        return {"type": "object", "additionalProperties": False, "properties": properties}

    def _embedded_properties(self, import_path, expression):
        while expression[0] == "ptr":
            expression = expression[1]
        schema = self._expression(import_path, expression)
        if "$ref" in schema:
            schema = self.definitions[schema["$ref"].split("/")[-1]]
        if schema is None or schema.get("type") != "object" or "properties" not in schema:
            raise BuildError("%s: embedded %s is not a struct and cannot be inlined" % (import_path, expression))
        return schema["properties"]


def _type_identifier(expression):
    while expression[0] == "ptr":
        expression = expression[1]
    return expression[-1] if expression[0] in ("name", "qual") else ""


# --- reading upstream sources ---------------------------------------------------------------------
def _git_show(repository, ref, path):
    commit = subprocess.run(["git", "-C", repository, "rev-parse", ref + "^{commit}"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run(["git", "-C", repository, "show", "%s:%s" % (commit, path)], capture_output=True, text=True, check=True).stdout
    return commit, text


def load_sources(minor, mirrors, kubernetes_src):
    """``({import path: GoFile}, [provenance])`` for one Kubernetes minor."""
    ref = MINORS[minor]["ref"]
    packages = {}
    upstream = []
    for import_path, (repository, path) in sorted(STAGING_FILES.items()):
        commit, text = _git_show(os.path.join(mirrors, "kubernetes+" + repository, "repo"), ref, path)
        packages[import_path] = go_types.parse(text)
        upstream.append({"package": import_path, "repository": "kubernetes/" + repository, "ref": ref, "commit": commit, "path": path})
    for import_path, (path, commit) in sorted(KUBEADM_FILES.items()):
        if os.path.isdir(os.path.join(kubernetes_src, ".git")):
            text = subprocess.run(["git", "-C", kubernetes_src, "show", "%s:%s" % (commit, path)], capture_output=True, text=True, check=True).stdout
        else:
            with open(os.path.join(kubernetes_src, path), encoding="utf-8") as handle:
                text = handle.read()
        packages[import_path] = go_types.parse(text)
        upstream.append({"package": import_path, "repository": "kubernetes/kubernetes", "commit": commit, "path": path})
    return packages, upstream


def build_minor(minor, mirrors, kubernetes_src):
    """``{file name: schema document}`` of every API version the minor's kubeadm reads."""
    packages, upstream = load_sources(minor, mirrors, kubernetes_src)
    documents = {}
    for (group, version), (import_path, kinds) in sorted(APIS.items()):
        if group == "kubeadm.k8s.io" and version not in MINORS[minor]["kubeadm"]:
            continue
        builder = SchemaBuilder(packages)
        document = builder.schema(group, version, import_path, kinds)
        used = {definition.rsplit(".", 1)[0] for definition in document["$defs"]}
        document["x-upstream"] = [u for u in upstream if definition_name(u["package"], "X").rsplit(".", 1)[0] in used]
        documents["%s_%s.json" % (group, version)] = document
    return documents


def write_documents(out_dir, minor, documents):
    target = os.path.join(out_dir, "v" + minor)
    os.makedirs(target, exist_ok=True)
    for name, document in documents.items():
        path = os.path.join(target, name)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=False)
            handle.write("\n")
        os.replace(path + ".tmp", path)
        print("wrote %s (%d definitions)" % (path, len(document["$defs"])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the schemas of one or all supported minors")
    build.add_argument("--minor", action="append", choices=sorted(MINORS), help="default: every supported minor")
    build.add_argument("--mirrors", required=True, help="directory of git mirrors kubernetes+<repo>/repo")
    build.add_argument("--kubernetes-src", required=True, help="kubernetes/kubernetes checkout or tree of the kubeadm type files")
    build.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        for minor in args.minor or sorted(MINORS):
            write_documents(args.out, minor, build_minor(minor, args.mirrors, args.kubernetes_src))
    except (BuildError, go_types.GoSyntaxError, subprocess.CalledProcessError, OSError) as exc:
        print("kube_schema: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
