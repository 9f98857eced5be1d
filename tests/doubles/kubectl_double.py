# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of kubectl (not Kubernetes): the commands kubeforge.cluster runs, against the cluster state the
kubelet double serves (double_cluster.py), reached through the server of ``--kubeconfig`` (default
/etc/kubernetes/admin.conf, then $KUBECONFIG). Implemented: ``version --client [-o json]``, ``get --raw=/readyz``,
``get nodes|csr|nodes,csr -o json``, ``certificate approve NAME...``, ``label node NAME [--overwrite] k=v k-``,
``taint node NAME [--overwrite] key[=value]:Effect key:Effect-``, ``diff -f PATH``, ``apply -f PATH`` (a file or the
.yaml/.yml/.json files of a directory), ``drain NAME``, ``uncordon NAME``, ``delete node NAME``. Calls are recorded
with the whole argv."""

from __future__ import annotations

import json
import os
import sys
import time

import double_cluster as cluster
import double_common as common

GLOBAL_OPTIONS = ("--kubeconfig", "--request-timeout")


def split_globals(argv):
    """(global options, the rest): ``--kubeconfig X`` / ``--kubeconfig=X`` anywhere."""
    found, rest, skip = {}, [], False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in arg:
                found[name] = arg.split("=", 1)[1]
            elif index + 1 < len(argv):
                found[name], skip = argv[index + 1], True
            continue
        rest.append(arg)
    return found, rest


def server(options):
    path = options.get("--kubeconfig") or os.environ.get("KUBECONFIG") or "/etc/kubernetes/admin.conf"
    if not os.path.isfile(path):
        raise cluster.ApiError("The connection to the server localhost:8080 was refused - did you specify the right host or port?")
    return cluster.server_of_kubeconfig(path)


def object_key(obj):
    meta = obj.get("metadata") or {}
    return "%s/%s/%s" % (obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def read_objects(path):
    import yaml

    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, f) for f in os.listdir(path) if f.endswith((".yaml", ".yml", ".json")))
    objects = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                if isinstance(doc, dict) and doc.get("kind") == "List":
                    objects.extend(doc.get("items") or [])
                elif isinstance(doc, dict):
                    objects.append(doc)
    return objects


def main(argv):
    common.load_build()
    record = {"time": time.time(), "component": "kubectl", "argv": ["kubectl"] + list(argv), "test_double": True}
    options, args = split_globals(argv)
    words = [a for a in args if not a.startswith("-")]
    try:
        rc = run(options, args, words, record)
    except (cluster.ApiError, OSError, ValueError, KeyError) as exc:
        rc = common.fail(record, "error: %s" % exc)
    record["rc"] = rc
    record["end"] = time.time()
    common.log("kubectl", record)
    return rc


def run(options, args, words, record):  # noqa: C901 - one branch per command, read top to bottom
    verb = words[0] if words else ""
    if verb == "version":
        info = common.version_info("kubectl")
        print(json.dumps({"clientVersion": info}, indent=2) if common.option(args, "-o", "--output") == "json" else "Client Version: " + info["gitVersion"])
        return 0
    if verb == "get" and common.option(args, "--raw"):
        print(cluster.get(server(options), common.option(args, "--raw"), timeout=5))
        return 0
    api = server(options)
    if verb == "get":
        kinds = words[1].split(",")
        state = cluster.get(api)
        items = []
        for kind in kinds:
            source = {"nodes": "nodes", "node": "nodes", "csr": "csrs", "certificatesigningrequests": "csrs"}.get(kind)
            if not source:
                raise ValueError('the server doesn\'t have a resource type "%s"' % kind)
            items.extend(state[source][name] for name in sorted(state[source]))
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return 0
    if words[:2] == ["certificate", "approve"]:
        names = words[2:]

        def approve(state):
            for name in names:
                csr = state["csrs"].get(name)
                if csr is None:
                    raise cluster.ApiError('certificatesigningrequests.certificates.k8s.io "%s" not found' % name)
                csr["status"] = {"conditions": [{"type": "Approved", "reason": "KubectlApprove"}], "certificate": "VEVTVCBET1VCTEU="}
        cluster.update(api, approve)
        record["approved"] = names
        print("\n".join("certificatesigningrequest.certificates.k8s.io/%s approved" % n for n in names))
        return 0
    if verb in ("label", "taint") and words[1:2] == ["node"]:
        name, changes = words[2], words[3:]

        def edit(state):
            node = state["nodes"].get(name)
            if node is None:
                raise cluster.ApiError('nodes "%s" not found' % name)
            if verb == "label":
                labels = node["metadata"].setdefault("labels", {})
                for change in changes:
                    if change.endswith("-"):
                        labels.pop(change[:-1], None)
                    else:
                        key, _eq, value = change.partition("=")
                        labels[key] = value
                return
            taints = node["spec"].setdefault("taints", [])
            for change in changes:
                remove = change.endswith("-")
                keyvalue, _colon, effect = change.rstrip("-").rpartition(":")
                key, _eq, value = keyvalue.partition("=")
                taints[:] = [t for t in taints if not (t["key"] == key and t["effect"] == effect)]
                if not remove:
                    taints.append(dict({"key": key, "effect": effect}, **({"value": value} if value else {})))
        cluster.update(api, edit)
        print("node/%s %s" % (name, "labeled" if verb == "label" else "modified"))
        return 0
    if verb in ("diff", "apply"):
        objects = read_objects(common.option(args, "-f", "--filename"))
        stored = cluster.get(api)["objects"]
        changed = [o for o in objects if stored.get(object_key(o)) != o]
        record["objects"] = [object_key(o) for o in objects]
        if verb == "diff":
            for obj in changed:
                print("diff -u -N /tmp/LIVE/%s /tmp/MERGED/%s" % (object_key(obj).replace("/", "."), object_key(obj).replace("/", ".")))
            return 1 if changed else 0

        def store(state):
            for obj in objects:
                state["objects"][object_key(obj)] = obj
        cluster.update(api, store)
        for obj in objects:
            print("%s/%s %s" % (obj.get("kind", "").lower(), obj["metadata"]["name"],
                                ("created" if object_key(obj) not in stored else "configured") if obj in changed else "unchanged"))
        return 0
    if verb in ("drain", "uncordon", "cordon") or words[:2] == ["delete", "node"]:
        name = words[2] if verb == "delete" else words[1]

        def node_op(state):
            if name not in state["nodes"]:
                raise cluster.ApiError('nodes "%s" not found' % name)
            if verb == "delete":
                del state["nodes"][name]
            else:
                state["nodes"][name]["spec"]["unschedulable"] = verb != "uncordon"
        cluster.update(api, node_op)
        print('node "%s" deleted' % name if verb == "delete" else "node/%s %s" % (name, {"drain": "drained", "cordon": "cordoned"}.get(verb, "uncordoned")))
        return 0
    return common.fail(record, "kubectl TEST DOUBLE (kubeforge.cluster tests): %r is not implemented; see tests/doubles/" % " ".join(args), rc=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
