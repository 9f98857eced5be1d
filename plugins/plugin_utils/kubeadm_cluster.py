# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side decisions of kubeadm part 2, from what the nodes reported (``kubeforge.cluster.kubeadm_node_state``).

- ``kubeadm_join_plan``: is the cluster initialised (a control-plane node with admin.conf whose API server answers),
  which node talks to the API (the first live control-plane node in inventory order), which node runs ``kubeadm
  init`` (the first control-plane node, only when no control-plane node has a live API server and no node is
  joined), and which nodes still have to join (no /etc/kubernetes/kubelet.conf), control planes in inventory order.
- ``kubeadm_node_updates``: the ``kubectl label``/``taint`` argument lists that bring the Nodes to the inventory's
  labels and taints (nothing when they already match).
- ``kubeadm_node_settings``: per Node, from each host's variables, the labels/taints wanted and the names and
  addresses its kubelet serving certificate may carry.
- ``kubeadm_iptables_cleanup``: ``iptables-save`` output without the chains and rules Kubernetes and CNI plugins made
  (kubeadm reset leaves them), or ``""`` when there are none.
- ``kubeadm_mask_secrets``: kubeadm's output with bootstrap tokens and certificate keys masked, for failure messages.
"""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
MASK = "********"
_TOKEN_RE = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
_KEY_RE = re.compile(r"(?<![0-9a-fA-F:])[0-9a-f]{64}(?![0-9a-fA-F])")


def _state(hostvars, host, key, extra):
    if host in extra:
        return extra[host]
    value = (hostvars.get(host) or {}).get(key)
    if isinstance(value, dict) and not value.get("skipped") and "joined" in value:
        return value
    return None


def kubeadm_join_plan(hostvars, control_planes, nodes, state_key, extra_states=None):
    """The orchestration plan; ``error`` is non-empty when the nodes' states contradict each other.

    ``control_planes`` and ``nodes`` (every Kubernetes node, control planes included) are in inventory order;
    ``state_key`` the registered result of ``kubeadm_node_state`` in each host's vars; ``extra_states`` the results
    for control-plane nodes outside the play (``{host: result}``). Nodes with no state (not in the play) are left alone.
    """
    if not isinstance(control_planes, list) or not isinstance(nodes, list):
        raise AnsibleFilterError("kubeadm_join_plan needs the control_plane and kube_nodes host lists")
    extra = {}
    for item in (extra_states or []) if isinstance(extra_states, list) else (extra_states or {}).items():
        host, result = (item.get("item"), item) if isinstance(item, dict) else item
        if host and isinstance(result, dict) and "joined" in result:
            extra[host] = result
    states = {h: _state(hostvars, h, state_key, extra) for h in list(control_planes) + [n for n in nodes if n not in control_planes]}
    known = {h: s for h, s in states.items() if s is not None}
    live = [h for h in control_planes if (known.get(h) or {}).get("apiserver_live")]
    plan = {"initialised": bool(live), "primary": live[0] if live else "", "init": "", "join_control_planes": [],
            "join_workers": [], "joined": [h for h in known if known[h].get("joined")], "error": ""}
    if not live:
        dead = ["%s (%s)" % (h, known[h].get("apiserver_error") or "no answer") for h in control_planes if (known.get(h) or {}).get("admin_conf")]
        if plan["joined"] or dead:
            plan["error"] = ("no control-plane node has a live API server, but %s: start the kubelet on the control-plane nodes, or "
                             "reset the nodes with playbooks/reset.yml before a new kubeadm init"
                             % "; ".join(filter(None, ["nodes are joined: " + ", ".join(plan["joined"]) if plan["joined"] else "",
                                                       "admin.conf without a live API server on " + ", ".join(dead) if dead else ""])))
            return plan
        if not control_planes or control_planes[0] not in known:
            plan["error"] = "the cluster is not initialised and the first control-plane node %s is not in this run" % (
                control_planes[0] if control_planes else "(the control_plane group is empty)")
            return plan
        plan["init"] = plan["primary"] = control_planes[0]
    plan["join_control_planes"] = [h for h in control_planes if h in known and h != plan["init"] and not known[h].get("joined")]
    plan["join_workers"] = [h for h in nodes if h not in control_planes and h in known and not known[h].get("joined")]
    return plan


def _taint_text(taint):
    key = taint.get("key") or ""
    value = taint.get("value")
    return "%s%s:%s" % (key, "=" + str(value) if value not in (None, "") else "", taint.get("effect") or "")


def kubeadm_node_updates(node_list, wanted):
    """``[argv after kubectl]`` for labels and taints that differ. ``wanted``: ``{node: {"labels": {k: v},
    "taints": [{key, value, effect}] or None, "schedulable_control_plane": bool}}``; Nodes not in the list are skipped."""
    if isinstance(node_list, str):
        try:
            node_list = json.loads(node_list)
        except ValueError as exc:
            raise AnsibleFilterError("kubeadm_node_updates: kubectl's output is not JSON (%s)" % exc) from None
    if not isinstance(node_list, dict) or not isinstance(wanted, dict):
        raise AnsibleFilterError("kubeadm_node_updates needs kubectl's JSON list of nodes and a dict of wanted settings")
    current = {}
    for item in node_list.get("items") or []:
        if item.get("kind", "Node") == "Node":
            current[(item.get("metadata") or {}).get("name")] = item
    commands = []
    for name in sorted(wanted):
        node = current.get(name)
        if node is None:
            continue
        want = wanted[name] or {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        changes = ["%s=%s" % (k, v) for k, v in sorted((want.get("labels") or {}).items()) if labels.get(k) != str(v)]
        if changes:
            commands.append(["label", "node", name, "--overwrite"] + changes)
        taints = (node.get("spec") or {}).get("taints") or []
        have = {(t.get("key"), t.get("value") or "", t.get("effect")) for t in taints}
        add = [t for t in (want.get("taints") or []) if (t.get("key"), str(t.get("value") or ""), t.get("effect")) not in have]
        remove = []
        if want.get("schedulable_control_plane"):
            remove = [t for t in taints if t.get("key") == CONTROL_PLANE_TAINT["key"] and t.get("effect") == CONTROL_PLANE_TAINT["effect"]]
        if add or remove:
            commands.append(["taint", "node", name, "--overwrite"] + [_taint_text(t) for t in add] + [_taint_text(t) + "-" for t in remove])
    return commands


def _host_value(hostvars, host, name, default):
    value = (hostvars.get(host) or {}).get(name)
    return default if value is None else value


def kubeadm_node_settings(hostvars, nodes, control_planes, schedulable_control_plane=False, kata_labels=None):
    """``{"wanted": {node name: {labels, taints, schedulable_control_plane}}, "csr_nodes": {node name: {addresses, names}}}``.

    Per host: ``kubeadm_node_name`` (default the inventory name), ``kubeadm_node_labels`` + ``kubeadm_node_api_labels``,
    ``kubeadm_node_taints``, ``ansible_host``, ``kubeadm_advertise_address``, ``kubeadm_kubelet_serving_addresses``;
    hosts with ``kubeforge_kata_enabled`` also get ``kata_labels`` (what the Kata RuntimeClass's nodeSelector asks for).
    """
    if not isinstance(nodes, list) or not isinstance(control_planes, list):
        raise AnsibleFilterError("kubeadm_node_settings needs the kube_nodes and control_plane host lists")
    wanted, csr_nodes = {}, {}
    for host in nodes:
        name = _host_value(hostvars, host, "kubeadm_node_name", "") or host
        labels = dict(_host_value(hostvars, host, "kubeadm_node_labels", {}))
        labels.update(_host_value(hostvars, host, "kubeadm_node_api_labels", {}))
        if str(_host_value(hostvars, host, "kubeforge_kata_enabled", False)).lower() in ("true", "yes", "1"):
            labels.update(kata_labels or {})
        wanted[name] = {"labels": {str(k): str(v) for k, v in labels.items()},
                        "taints": _host_value(hostvars, host, "kubeadm_node_taints", None),
                        "schedulable_control_plane": bool(schedulable_control_plane) and host in control_planes}
        addresses = [_host_value(hostvars, host, "ansible_host", ""), _host_value(hostvars, host, "kubeadm_advertise_address", "")]
        addresses += list(_host_value(hostvars, host, "kubeadm_kubelet_serving_addresses", []))
        csr_nodes[name] = {"addresses": [a for a in addresses if a], "names": [host] if host != name else []}
    return {"wanted": wanted, "csr_nodes": csr_nodes}


_KUBE_CHAIN_RE = re.compile(r"^(KUBE-|CNI-|FLANNEL-|CILIUM_|cali-)")


def kubeadm_iptables_cleanup(save_text):
    """``iptables-restore`` input without the Kubernetes/CNI chains and the rules that are in or jump to them."""
    kept, removed = [], False
    for line in str(save_text or "").splitlines():
        words = line.split()
        if line.startswith(":") and _KUBE_CHAIN_RE.match(line[1:]):
            removed = True
            continue
        if words[:1] == ["-A"] and len(words) > 1:
            target = words[words.index("-j") + 1] if "-j" in words[:-1] else ""
            if _KUBE_CHAIN_RE.match(words[1]) or _KUBE_CHAIN_RE.match(target):
                removed = True
                continue
        kept.append(line)
    return "\n".join(kept) + "\n" if removed else ""


def kubeadm_mask_secrets(text, secrets=None):
    """``text`` with bootstrap tokens, 64-hex certificate keys and the given ``secrets`` masked."""
    text = "" if text is None else str(text)
    for secret in sorted({s for s in secrets or [] if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _KEY_RE.sub(MASK, _TOKEN_RE.sub(MASK, text))
