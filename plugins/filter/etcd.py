# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the etcd role: the members from the inventory, each member's bootstrap plan, its config file.

Plain Python so the decisions are unit-tested (tests/unit/plugins/filter/test_etcd.py) and the config is judged
by real etcd 3.4 and 3.5 (tests/integration/test_etcd_real.py); the role only renders the results.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

MANAGED_KEYS = frozenset((
    "name", "data-dir", "listen-peer-urls", "listen-client-urls", "advertise-client-urls", "initial-advertise-peer-urls",
    "initial-cluster", "initial-cluster-state", "initial-cluster-token", "client-transport-security",
    "peer-transport-security", "listen-metrics-urls", "logger", "log-outputs", "log-level", "heartbeat-interval",
    "election-timeout",
))
BOOTSTRAP_KEYS = ("initial-cluster", "initial-cluster-state", "initial-cluster-token")


def _url(address, port):
    host = "[%s]" % address if ipaddress.ip_address(address).version == 6 else address
    return "https://%s:%d" % (host, port)


def etcd_members(hosts, hostvars, client_port=2379, peer_port=2380):
    """[{name, address, client_url, peer_url}] of the inventory hosts ``hosts``, in their order.

    A member's address is its ``etcd_address``, else its ``ansible_host``, else its name; it must be an IP address.
    """
    members = []
    for host in hosts:
        variables = hostvars[host] if host in hostvars else {}
        address = variables.get("etcd_address") or variables.get("ansible_host") or host
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            raise AnsibleFilterError("etcd member %s: its address %r (etcd_address, else ansible_host) must be an IP address; set "
                                     "etcd_address in the inventory to the address the member listens on" % (host, address)) from None
        members.append({"name": host, "address": str(address), "client_url": _url(str(address), client_port),
                        "peer_url": _url(str(address), peer_port)})
    return members


def _initial_cluster(pairs):
    return ",".join("%s=%s" % pair for pair in pairs)


def etcd_plan(members, preflights, live, token):
    """How each member starts: ``{name: {"action", "bootstrap"}, "joiners": [...]}``.

    ``preflights`` maps member names to their ``etcd_preflight`` result (``has_data``, ``bootstrap``); ``live`` is
    the member list of the running cluster (``etcd_health``'s ``cluster.members``) or empty when none runs.

    * ``keep``: the member has data; its bootstrap keys stay as its config file has them (etcd ignores them now),
      so changing the member set never rewrites, and restarts, the others.
    * ``bootstrap``: no member has data and none runs: a new cluster of all members (``initial-cluster-state: new``).
    * ``join``: the cluster runs and this member has no data: it joins (``existing``), one at a time in inventory
      order; its ``initial-cluster`` is the live members plus the joiners up to itself, which is what etcd sees
      when it starts.
    """
    live = live or []
    by_peer = {url: m for m in members for url in [m["peer_url"]]}
    cluster_exists = bool(live) or any(preflights.get(m["name"], {}).get("has_data") for m in members)
    plan, joiners = {}, []
    live_pairs = []
    for entry in live:
        name = entry.get("name") or by_peer.get((entry.get("peer_urls") or [""])[0], {}).get("name")
        if not name:
            raise AnsibleFilterError("the running etcd cluster has an unstarted member with peer URLs %s that is not in the "
                                     "inventory; remove it (etcdctl member remove %s) or add its host to the etcd group"
                                     % (entry.get("peer_urls"), entry.get("id")))
        live_pairs.append((name, (entry.get("peer_urls") or [""])[0]))
    live_names = {name for name, _url in live_pairs}
    for member in members:
        preflight = preflights.get(member["name"], {})
        current = preflight.get("bootstrap") or {}
        if preflight.get("has_data") and all(key in current for key in BOOTSTRAP_KEYS):
            plan[member["name"]] = {"action": "keep", "bootstrap": {key: current[key] for key in BOOTSTRAP_KEYS}}
        elif not cluster_exists:
            plan[member["name"]] = {"action": "bootstrap", "bootstrap": {
                "initial-cluster": _initial_cluster((m["name"], m["peer_url"]) for m in members),
                "initial-cluster-state": "new", "initial-cluster-token": token}}
        else:
            joiners.append(member["name"])
            pairs = list(live_pairs) + [(m["name"], m["peer_url"]) for m in members
                                        if m["name"] in joiners and m["name"] not in live_names]
            plan[member["name"]] = {"action": "join", "bootstrap": {
                "initial-cluster": _initial_cluster(pairs), "initial-cluster-state": "existing", "initial-cluster-token": token}}
    plan["joiners"] = joiners
    return plan


def etcd_config(member, bootstrap, settings):
    """The member's etcd configuration file (``--config-file``) as a dict, keys in a readable order.

    ``settings``: ``data_dir``, ``pki_dir`` (holding ``ca.pem``, ``server.pem``, ``peer.pem`` and keys),
    ``metrics_url`` (empty: none), ``log_level``, ``heartbeat_interval``, ``election_timeout``, ``extra`` (other
    etcd options; the managed ones are refused).
    """
    extra = settings.get("extra") or {}
    clash = sorted(set(extra) & MANAGED_KEYS)
    if clash:
        raise AnsibleFilterError("etcd_config_extra sets %s, which the role manages; use the role's own variables instead"
                                 % ", ".join(clash))
    pki = settings["pki_dir"].rstrip("/")
    listen_client = [member["client_url"]]
    if settings.get("listen_localhost", True) and member["address"] not in ("127.0.0.1", "::1"):
        listen_client.append("https://127.0.0.1:%s" % member["client_url"].rsplit(":", 1)[1])
    config = {
        "name": member["name"],
        "data-dir": settings["data_dir"],
        "listen-peer-urls": member["peer_url"],
        "listen-client-urls": ",".join(listen_client),
        "advertise-client-urls": member["client_url"],
        "initial-advertise-peer-urls": member["peer_url"],
    }
    config.update((key, bootstrap[key]) for key in BOOTSTRAP_KEYS)
    config["client-transport-security"] = {"cert-file": pki + "/server.pem", "key-file": pki + "/server-key.pem",
                                           "trusted-ca-file": pki + "/ca.pem", "client-cert-auth": True}
    config["peer-transport-security"] = {"cert-file": pki + "/peer.pem", "key-file": pki + "/peer-key.pem",
                                         "trusted-ca-file": pki + "/ca.pem", "client-cert-auth": True}
    if settings.get("metrics_url"):
        config["listen-metrics-urls"] = settings["metrics_url"]
    config.update({"logger": "zap", "log-outputs": ["stderr"], "log-level": settings.get("log_level", "info"),
                   "heartbeat-interval": int(settings.get("heartbeat_interval", 100)),
                   "election-timeout": int(settings.get("election_timeout", 1000))})
    config.update(sorted(extra.items()))
    return config


class FilterModule:
    def filters(self):
        return {"etcd_members": etcd_members, "etcd_plan": etcd_plan, "etcd_config": etcd_config}
