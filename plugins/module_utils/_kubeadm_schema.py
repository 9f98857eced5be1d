# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate kubeadm, kubelet and kube-proxy configuration documents against the upstream API types.

The schemas are data in ``kubeadm_schemas/v<minor>/<group>_<version>.json``, made from the upstream Go
types by ``tools/kube_schema.py`` (each file records its upstream sources). Validation follows what
Kubernetes' strict decoder does with a document: an unknown field is an error (with the nearest known
name as a hint), every value must have its Go type (a bool is not a number, 1.5 is not an integer, a
list is not a string), integers stay in their Go range, enum types take only their declared constants,
durations and quantities must parse; ``null`` is accepted anywhere (Go decodes it as the zero value).

Stdlib only: used by the ``kubeadm_config`` action plugin on the controller and by the test double of
``kubeadm config validate`` on lab nodes.
"""

from __future__ import annotations

import difflib
import json
import os
import re

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kubeadm_schemas")

_DURATION_RE = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$")
_QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FORMATS = {
    "duration": (_DURATION_RE, "a Go duration such as 90s, 5m or 1h30m"),
    "quantity": (_QUANTITY_RE, "a Kubernetes quantity such as 512Mi, 1Gi or 100m"),
    "date-time": (_DATE_TIME_RE, "an RFC 3339 time such as 2026-12-01T00:00:00Z"),
}


class SchemaNotFound(Exception):
    """No schema for this Kubernetes minor or API version."""


class Problem:
    """One validation error: ``path`` (``ClusterConfiguration.apiServer.certSANs[0]``) and what is wrong."""

    def __init__(self, path, message):
        self.path = path
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.path, self.message)

    def __repr__(self):
        return "Problem(%r, %r)" % (self.path, self.message)


def supported_minors(schema_dir=SCHEMA_DIR):
    """The Kubernetes minors there are schemas for, oldest first (``["1.35", "1.36", "1.37"]``)."""
    minors = [name[1:] for name in os.listdir(schema_dir) if re.match(r"^v\d+\.\d+$", name)]
    return sorted(minors, key=lambda m: tuple(int(p) for p in m.split(".")))


def api_versions(minor, schema_dir=SCHEMA_DIR):
    """``{"kubeadm.k8s.io/v1beta4": path, ...}`` for one minor."""
    directory = os.path.join(schema_dir, "v" + minor)
    if not os.path.isdir(directory):
        raise SchemaNotFound("no schemas for Kubernetes %s (there are schemas for %s)" % (minor, ", ".join(supported_minors(schema_dir))))
    found = {}
    for name in sorted(os.listdir(directory)):
        match = re.match(r"^(.+)_(v[0-9a-z]+)\.json$", name)
        if match:
            found["%s/%s" % (match.group(1), match.group(2))] = os.path.join(directory, name)
    return found


_CACHE = {}


def load_schema(minor, api_version, schema_dir=SCHEMA_DIR):
    key = (schema_dir, minor, api_version)
    if key not in _CACHE:
        paths = api_versions(minor, schema_dir)
        if api_version not in paths:
            raise SchemaNotFound("Kubernetes %s does not read apiVersion %s (it reads %s)" % (minor, api_version, ", ".join(paths)))
        with open(paths[api_version], encoding="utf-8") as handle:
            _CACHE[key] = json.load(handle)
    return _CACHE[key]


def _type_of(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches_type(value, wanted):
    actual = _type_of(value)
    if wanted == "number":
        return actual in ("integer", "number")
    return actual == wanted


def _show(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class Validator:
    """Checks one schema document's definitions; ``problems`` collects what is wrong."""

    def __init__(self, schema):
        self.schema = schema
        self.problems = []

    def _resolve(self, node):
        while "$ref" in node:
            node = self.schema["$defs"][node["$ref"].split("/")[-1]]
        return node

    def check(self, node, value, path):
        if value is None:
            return
        extra = {key: val for key, val in node.items() if key != "$ref"}
        node = dict(self._resolve(node), **{k: v for k, v in extra.items() if k.startswith("x-")})
        wanted = node.get("type")
        if wanted is not None:
            types = wanted if isinstance(wanted, list) else [wanted]
            if not any(_matches_type(value, t) for t in types):
                go_type = node.get("x-go-type")
                self.problems.append(Problem(path, "must be %s%s, got %s %s" % (
                    " or ".join(types), " (%s)" % go_type.rsplit(".", 1)[-1] if go_type else "", _type_of(value), _show(value))))
                return
        if "enum" in node and value not in node["enum"]:
            self.problems.append(Problem(path, "%s is not one of %s" % (_show(value), ", ".join(json.dumps(v) for v in node["enum"]))))
            return
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            if "minimum" in node and value < node["minimum"] or "maximum" in node and value > node["maximum"]:
                self.problems.append(Problem(path, "%s is outside the range %s..%s" % (value, node.get("minimum"), node.get("maximum"))))
            return
        if isinstance(value, str):
            if "pattern" in node and not re.search(node["pattern"], value):
                self.problems.append(Problem(path, "%s does not match %s" % (_show(value), node["pattern"])))
            if node.get("format") in _FORMATS:
                regex, what = _FORMATS[node["format"]]
                if not regex.match(value):
                    self.problems.append(Problem(path, "%s is not %s" % (_show(value), what)))
            return
        if isinstance(value, (list, tuple)):
            items = node.get("items")
            if items is not None:
                for index, item in enumerate(value):
                    self.check(items, item, "%s[%d]" % (path, index))
            return
        if isinstance(value, dict):
            self._object(node, value, path)

    def _object(self, node, value, path):
        properties = node.get("properties", {})
        additional = node.get("additionalProperties", True)
        for key, item in value.items():
            child = "%s.%s" % (path, key) if path else str(key)
            if not isinstance(key, str):
                self.problems.append(Problem(child, "field names must be strings, got %s %s" % (_type_of(key), _show(key))))
                continue
            if key in properties:
                self.check(properties[key], item, child)
            elif additional is False:
                hint = difflib.get_close_matches(key, list(properties), n=1, cutoff=0.6)
                if not hint:
                    hint = [name for name in properties if name.lower() == key.lower()]
                self.problems.append(Problem(child, "unknown field%s" % (" (did you mean %s?)" % hint[0] if hint else "")))
            elif isinstance(additional, dict):
                self.check(additional, item, child)


def validate_document(document, minor, schema_dir=SCHEMA_DIR):
    """Problems of one document (a dict with apiVersion and kind) for Kubernetes ``minor``; [] when valid."""
    if not isinstance(document, dict):
        return [Problem("(document)", "must be a mapping with apiVersion and kind, got %s" % _type_of(document))]
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    label = kind if isinstance(kind, str) and kind else "(document)"
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [Problem(label, "apiVersion and kind must both be set")]
    try:
        schema = load_schema(minor, api_version, schema_dir)
    except SchemaNotFound as exc:
        return [Problem(label, str(exc))]
    if kind not in schema["kinds"]:
        return [Problem(label, "%s has no kind %s (it has %s)" % (api_version, kind, ", ".join(sorted(schema["kinds"]))))]
    validator = Validator(schema)
    validator.check(schema["kinds"][kind], document, kind)
    return validator.problems


def validate_documents(documents, minor, schema_dir=SCHEMA_DIR):
    problems = []
    for document in documents:
        problems.extend(validate_document(document, minor, schema_dir))
    return problems
