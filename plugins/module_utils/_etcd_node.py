# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An etcd member host as the etcd modules see it: its addresses, data, config file, binaries and systemd.

Read-only helpers take a ``root`` (``/`` on a host, a fake tree in unit tests); ``NodeOps`` is the ``ops`` of
``_etcd_cluster`` on a real host (etcdctl and systemctl through ``module.run_command``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time

from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import C_ENV, Etcdctl
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path

# Keys of the config file that only matter when a member starts without data (bootstrap); they are kept as they
# are for a member that has data, so adding a member never rewrites (and restarts) the others.
BOOTSTRAP_KEYS = ("initial-cluster", "initial-cluster-state", "initial-cluster-token")
_TOP_LEVEL_RE = re.compile(r"^([A-Za-z0-9-]+):[ \t]*(.*?)[ \t]*$")
_VERSION_RE = re.compile(r"etcd Version:\s*(\d+\.\d+\.\d+)")


def local_networks(root="/"):
    """Addresses the kernel treats as this host's (its 'local' routes, e.g. 10.0.0.11/32 and 127.0.0.0/8)."""
    networks = []
    try:
        with open(os.path.join(root, "proc/net/fib_trie"), encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for previous, line in zip(lines, lines[1:]):
        match = re.match(r"^\s*\|-- (\S+)$", previous)
        local = re.match(r"^\s*/(\d+) host LOCAL$", line)
        if match and local:
            networks.append(ipaddress.ip_network("%s/%s" % (match.group(1), local.group(1)), strict=False))
    try:
        with open(os.path.join(root, "proc/net/if_inet6"), encoding="ascii") as handle:
            for line in handle:
                raw = line.split()[0]
                networks.append(ipaddress.ip_network(":".join(raw[i:i + 4] for i in range(0, 32, 4)) + "/128"))
    except OSError:
        pass
    return sorted(set(networks), key=lambda n: (n.version, n))


def missing_addresses(addresses, networks):
    """The ``addresses`` that are not this host's."""
    missing = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not any(ip in network for network in networks if network.version == ip.version):
            missing.append(address)
    return missing


def host_addresses(networks):
    """A readable list of the host's unicast addresses (the /32 and /128 ones, loopback networks as such)."""
    return [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in networks]


def has_member_data(data_dir):
    """True when ``data_dir`` holds an etcd member (a WAL or a backend database)."""
    member = os.path.join(data_dir, "member")
    wal = os.path.join(member, "wal")
    try:
        if any(name.endswith(".wal") for name in os.listdir(wal)):
            return True
    except OSError:
        pass
    return os.path.isfile(os.path.join(member, "snap", "db"))


def read_bootstrap(config_path):
    """The bootstrap keys of an existing config file written by this collection (flat ``key: value`` lines).

    Values are YAML scalars as ``to_nice_yaml`` writes them (plain or single/double quoted). Returns {} when the
    file does not exist.
    """
    found = {}
    try:
        with open(config_path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        match = _TOP_LEVEL_RE.match(line)
        if match and match.group(1) in BOOTSTRAP_KEYS:
            found[match.group(1)] = _scalar(match.group(2))
    return found


def _scalar(text):
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    return text


def etcd_version(run, binary):
    """``3.4.23`` from ``etcd --version``, or None when the binary is missing or says nothing parsable."""
    if not binary or not os.path.exists(binary):
        return None
    rc, stdout, _stderr = run([binary, "--version"])
    match = _VERSION_RE.search(stdout or "")
    return match.group(1) if rc == 0 and match else None


class NodeOps:
    """The ``ops`` of ``_etcd_cluster`` on this host."""

    def __init__(self, module, etcdctl_path, endpoints, ca_file, cert_file, key_file, command_timeout=10):
        self.module = module
        binary = etcdctl_path if os.sep in etcdctl_path else module.get_bin_path(etcdctl_path)
        if not binary or not os.access(binary, os.X_OK):
            module.fail_json(msg="etcdctl_path: %s was not found on this host; install etcdctl (Debian package etcd-client) or "
                                 "set etcdctl_path" % etcdctl_path)
        for option, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
            try:
                absolute_path(option, path)
            except InputError as exc:
                module.fail_json(msg=str(exc))
            if not os.path.isfile(path):
                module.fail_json(msg="%s: %s does not exist on this host" % (option, path))
        self.etcdctl = Etcdctl(binary, self.run, endpoints, ca_file, cert_file, key_file, command_timeout=command_timeout)
        self.systemctl_binary = module.get_bin_path("systemctl")

    def run(self, argv):
        return self.module.run_command(argv, environ_update=C_ENV)

    def systemctl(self, args):
        if not self.systemctl_binary:
            return 127, "", "systemctl not found: the etcd modules manage etcd as a systemd unit"
        return self.run([self.systemctl_binary] + list(args))

    @staticmethod
    def monotonic():
        return time.monotonic()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)
