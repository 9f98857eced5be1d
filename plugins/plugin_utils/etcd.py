# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the etcd role: the members from the inventory, each member's bootstrap plan, its config file.

Plain Python so the decisions are unit-tested (tests/unit/plugins/filter/test_etcd.py) and the config is judged
by real etcd 3.4 and 3.5 (tests/integration/test_etcd_real.py); the role only renders the results.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

MANAGED_KEYS = frozenset((
    "name", "data-dir", "listen-peer-urls", "listen-client-urls", "advertise-client-urls", "initial-advertise-peer-urls",
    "initial-cluster", "initial-cluster-state", "initial-cluster-token", "client-transport-security",
    "peer-transport-security", "listen-metrics-urls", "logger", "log-outputs", "log-level", "heartbeat-interval",
    "election-timeout",
))
BOOTSTRAP_KEYS = ("initial-cluster", "initial-cluster-state", "initial-cluster-token")
# Results the role registers per member, read back through hostvars
PREFLIGHT = "__etcd_preflight"
RESTART_CAUSES = (("__etcd_install_package", "etcd binary"), ("__etcd_install_tarball", "etcd binary"),
                  ("__etcd_install_artifacts", "etcd binary"))
# The managed_files result of the member's files: which of its entries (changed_names) are restart causes
FILES = "__etcd_files"
FILE_CAUSES = (("config", "configuration"), ("unit", "systemd unit"))


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


def etcd_member_certificates(members, hostvars, subject, listen_localhost=True, extra_sans=(), peer_extra_sans=()):
    """The cfssl_cert certificate requests of every member: ``<name>-server``, ``<name>-peer`` and ``<name>-admin``.

    One kubeforge.cluster.cfssl_cert call on the controller issues them all (a call per member would run the module
    once per member). A member's ``etcd_listen_localhost``, ``etcd_extra_sans`` and ``etcd_peer_extra_sans`` are its
    inventory values when it has them, else the arguments (the role's values).
    """
    requests = []
    for member in members:
        variables = hostvars[member["name"]] if member["name"] in hostvars else {}
        localhost = variables.get("etcd_listen_localhost", listen_localhost)
        extra = variables.get("etcd_extra_sans", extra_sans)
        peer_extra = variables.get("etcd_peer_extra_sans", peer_extra_sans)
        for name, value in (("etcd_extra_sans", extra), ("etcd_peer_extra_sans", peer_extra)):
            if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
                raise AnsibleFilterError("etcd member %s: %s must be a list of host names and IP addresses, got %r" % (member["name"], name, value))
        try:
            localhost = boolean(localhost, strict=True)  # yes/no and -e etcd_listen_localhost=false as Ansible reads them
        except TypeError:
            raise AnsibleFilterError("etcd member %s: etcd_listen_localhost must be true or false, got %r" % (member["name"], localhost)) from None
        own = [member["name"], member["address"]]
        requests += [
            # server + client auth (as kubeadm makes it): etcd's JSON gateway dials the member's own gRPC listener with
            # the server certificate as its client certificate
            {"name": member["name"] + "-server", "cn": member["name"], "profile": "peer", "names": subject,
             "hosts": own + (["127.0.0.1", "localhost"] if localhost else []) + list(extra)},
            {"name": member["name"] + "-peer", "cn": member["name"], "profile": "peer", "names": subject,
             "hosts": own + list(peer_extra)},
            {"name": member["name"] + "-admin", "cn": "etcd-admin", "profile": "client", "names": subject},
        ]
    return requests


def etcd_certificates_changed(pki_result, member):
    """Whether the cfssl_cert result changed the CA or one of ``member``'s certificates (false when skipped)."""
    if not isinstance(pki_result, dict):
        return False
    if (pki_result.get("ca") or {}).get("changed"):
        return True
    certificates = pki_result.get("certificates") or {}
    return any((certificates.get("%s-%s" % (member, kind)) or {}).get("changed") for kind in ("server", "peer", "admin"))


def _initial_cluster(pairs):
    return ",".join("%s=%s" % pair for pair in pairs)


def _registered(hostvars, host, name):
    """A result the role registered on ``host`` ({} when the host did not run it, e.g. outside --limit)."""
    if host not in hostvars:
        return {}
    value = hostvars[host].get(name)
    return value if isinstance(value, dict) else {}


def etcd_running(members, hostvars):
    """Names of the members whose preflight found data and an active unit: where the live cluster can be read."""
    return [m["name"] for m in members
            if _registered(hostvars, m["name"], PREFLIGHT).get("has_data")
            and (_registered(hostvars, m["name"], PREFLIGHT).get("service") or {}).get("active_state") == "active"]


def etcd_plan(members, hostvars, live, token):
    """How each member starts: ``{name: {"action", "bootstrap"}, "joiners": [...]}``.

    Reads each member's ``etcd_preflight`` result (registered by the role as ``__etcd_preflight``: ``has_data``,
    ``bootstrap``); ``live`` is the member list of the running cluster (``etcd_health``'s ``cluster.members``) or
    empty when none runs.

    * ``keep``: the member has data; its bootstrap keys stay as its config file has them (etcd ignores them now),
      so changing the member set never rewrites, and restarts, the others.
    * ``bootstrap``: no member has data and none runs: a new cluster of all members (``initial-cluster-state: new``).
    * ``join``: the cluster runs and this member has no data: it joins (``existing``), one at a time in inventory
      order; its ``initial-cluster`` is the live members plus the joiners up to itself, which is what etcd sees
      when it starts.
    """
    live = live or []
    preflights = {m["name"]: _registered(hostvars, m["name"], PREFLIGHT) for m in members}
    by_peer = {m["peer_url"]: m for m in members}
    cluster_exists = bool(live) or any(p.get("has_data") for p in preflights.values())
    plan, joiners, live_pairs = {}, [], []
    for entry in live:
        name = entry.get("name") or by_peer.get((entry.get("peer_urls") or [""])[0], {}).get("name")
        if not name:
            raise AnsibleFilterError("the running etcd cluster has an unstarted member with peer URLs %s that is not in the "
                                     "inventory; remove it (etcdctl member remove %s) or add its host to the etcd group"
                                     % (entry.get("peer_urls"), entry.get("id")))
        live_pairs.append((name, (entry.get("peer_urls") or [""])[0]))
    live_names = {name for name, _url in live_pairs}
    for member in members:
        preflight = preflights[member["name"]]
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


def etcd_restarts(members, hostvars, leader=None):
    """The running members that must restart, one at a time, the leader last: ``[{"name", "reasons"}]``.

    A member restarts when, in this run, its configuration file or systemd unit changed, its etcd binary was
    installed or upgraded, or its CA certificate changed (etcd reads the CA only at start; leaf certificates are
    read again for every connection, so they need no restart). Members that were not running, or that are only
    joining or starting now, are left to the start and join steps.
    """
    restarts = []
    for member in members:
        name = member["name"]
        preflight = _registered(hostvars, name, PREFLIGHT)
        if not preflight.get("has_data") or (preflight.get("service") or {}).get("active_state") != "active":
            continue
        changed_files = _registered(hostvars, name, FILES).get("changed_names") or []
        reasons = [reason for entry, reason in FILE_CAUSES if entry in changed_files]
        for variable, reason in RESTART_CAUSES:
            if _registered(hostvars, name, variable).get("changed") and reason not in reasons:
                reasons.append(reason)
        if _registered(hostvars, name, "__etcd_certs").get("ca_changed"):
            reasons.append("CA certificate")
        if reasons:
            restarts.append({"name": name, "reasons": reasons})
    restarts.sort(key=lambda entry: entry["name"] == leader)
    return restarts


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
