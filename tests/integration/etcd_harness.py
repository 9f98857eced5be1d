# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real etcd clusters on this host, built the way the etcd role builds them, for tests.

Members listen on their own loopback addresses (``127.<free>.<n>.11`` ...), with certificates issued by
``cfssl_cert``'s code and the real cfssl, installed by ``etcd_certs``'s code, and a config file made by the role's
``etcd_config`` filter. Binaries are the Debian packages (``debfetch``): etcd 3.4 from bookworm, 3.5 from trixie.
The role's systemd unit is replaced by ``ProcessService``, which starts, stops and restarts the member
processes, so ``_etcd_cluster`` runs unchanged against them.

    with EtcdHarness(tmp, "trixie", subnet=2) as cluster:
        cluster.bootstrap(["m1", "m2", "m3"])
        cluster.ops("m1")            # the ops object of _etcd_cluster for member m1
        cluster.etcdctl("m1").members()
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import debfetch
import pytest
import yaml
from ansible_collections.kubeforge.cluster.plugins.filter.etcd import etcd_config, etcd_members, etcd_plan
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_cert as cfssl_cert
from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_certs as etcd_certs
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import Cfssl
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import has_member_data, read_bootstrap
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import C_ENV, Etcdctl

NAMES = ["m1", "m2", "m3", "m4", "m5"]
# etcdctl's command timeout for the calls that may meet a stopped member (health, status, member list): etcdctl waits
# that long for an endpoint that refuses connections (the role's default of 10 s would make each look at a cluster
# with a member down cost 20 s); a healthy member on loopback answers in well under a second even on a loaded host
SHORT_TIMEOUT = 3


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **C_ENV), check=False, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@functools.lru_cache(maxsize=None)
def _fetch_root(package, suite):
    """Each package once per test process: every fetch asks apt-cache for the candidate version (seconds of CPU)."""
    return debfetch.fetch(package, suite)


def fetch_bin(package, suite, name):
    try:
        root = _fetch_root(package, suite)
    except (debfetch.DebFetchError, OSError) as exc:
        pytest.skip("%s from Debian %s is not available here: %s" % (package, suite, exc))
    return str(Path(root) / "usr" / "bin" / name)


def free_loopback_octet(subnet):
    """The second octet of a 127.<octet>.<subnet>.0/24 whose etcd ports nobody holds: these tests may run side by side
    (CI and a developer's `make integration` on one host), and fixed addresses made the second run's members fail with
    "bind: address already in use"."""
    start = os.getpid() % 200
    for step in range(200):
        octet = 20 + (start + step) % 200
        try:
            for index in range(len(NAMES)):
                for port in (2379, 2380):
                    with socket.socket() as probe:
                        probe.bind(("127.%d.%d.%d" % (octet, subnet, 11 + index), port))
        except OSError:
            continue
        return octet
    raise RuntimeError("no free 127.x.%d.0/24 for the test members" % subnet)


class ProcessService:
    """What ``systemctl start/stop/restart`` does to the role's unit, for one member process."""

    def __init__(self, argv, log_path):
        self.argv, self.log_path, self.process = argv, log_path, None

    def start(self):
        if self.process is None or self.process.poll() is not None:
            self.log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while the member runs
            self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def pid(self):
        return self.process.pid if self.process is not None and self.process.poll() is None else None


class Ops:
    """``_etcd_cluster``'s ops for one member: real etcdctl, ``ProcessService`` as systemctl."""

    def __init__(self, harness, name):
        self.harness, self.name = harness, name
        self.etcdctl = harness.etcdctl(name, command_timeout=SHORT_TIMEOUT)
        self.calls = []

    def systemctl(self, args):
        self.calls.append(list(args))
        service = self.harness.services[self.name]
        if args[0] == "restart":
            service.stop()
            service.start()
        elif args[0] == "start":
            service.start()
        elif args[0] == "stop":
            service.stop()
        return 0, "", ""

    @staticmethod
    def monotonic():
        return time.monotonic()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


class EtcdHarness:
    def __init__(self, workdir, suite, subnet, cfssl_suite="trixie"):
        self.workdir, self.suite, self.subnet = Path(workdir), suite, subnet
        self.etcd = fetch_bin("etcd-server", suite, "etcd")
        self.etcdctl_bin = fetch_bin("etcd-client", suite, "etcdctl")
        self.etcdutl = fetch_bin("etcd-server", suite, "etcdutl")
        self.cfssl = fetch_bin("golang-cfssl", cfssl_suite, "cfssl")
        self.pki = self.workdir / "pki"
        self.services = {}
        octet = free_loopback_octet(subnet)
        self.hostvars = {name: {"etcd_address": "127.%d.%d.%d" % (octet, subnet, 11 + index)} for index, name in enumerate(NAMES)}
        self.members = {m["name"]: m for m in etcd_members(NAMES, self.hostvars)}
        self.extra_sans = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for service in self.services.values():
            service.stop(signal.SIGKILL)

    # PKI ---------------------------------------------------------------------------------------------------
    def issue(self, names=tuple(NAMES)):
        """cfssl_cert for every member (server, peer) and an admin client, like the role's PKI step."""
        certificates = [{"name": "admin", "cn": "etcd-admin", "profile": "client"}]
        for name in names:
            address = self.members[name]["address"]
            # the peer certificate also names 127.0.0.1: on loopback the kernel picks it as the source address of
            # outgoing peer connections, and etcd checks a peer's address against its certificate
            certificates += [
                # server + client auth, as kubeadm makes it: etcd's JSON gateway dials the member's own gRPC
                # listener with the server certificate as its client certificate
                {"name": name + "-server", "cn": name, "profile": "peer",
                 "hosts": [name, address, "127.0.0.1", "localhost"] + self.extra_sans.get(name, [])},
                {"name": name + "-peer", "cn": name, "profile": "peer", "hosts": [name, address, "127.0.0.1"]},
            ]
        params = {"dir": str(self.pki), "ca": {"cn": "etcd-ca", "names": {"O": "kubeforge"}}, "certificates": certificates}
        return cfssl_cert.ensure(params, Cfssl(self.cfssl, run, str(self.pki)))

    def install_certs(self, name):
        def read(*parts):
            return self.pki.joinpath(*parts).read_text()
        params = {"dir": str(self.workdir / name / "pki"), "ca": read("ca", "cert.pem"), "certificates": [
            {"name": "server", "cert": read(name + "-server", "cert.pem"), "key": read(name + "-server", "key.pem")},
            {"name": "peer", "cert": read(name + "-peer", "cert.pem"), "key": read(name + "-peer", "key.pem")},
            {"name": "admin", "cert": read("admin", "cert.pem"), "key": read("admin", "key.pem")},
        ]}
        return etcd_certs.ensure(params, check_mode=False)

    # Members -----------------------------------------------------------------------------------------------
    def data_dir(self, name):
        return str(self.workdir / name / "data")

    def config(self, name, bootstrap, extra=None):
        settings = {"data_dir": self.data_dir(name), "pki_dir": str(self.workdir / name / "pki" / "current"),
                    "listen_localhost": False, "extra": extra or {}}
        return etcd_config(self.members[name], bootstrap, settings)

    def write_config(self, name, config):
        path = self.workdir / name / "etcd.conf.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, width=4096))
        return path

    def plan(self, names, live=()):
        hostvars = {n: {"__etcd_preflight": {
            "has_data": has_member_data(self.data_dir(n)), "bootstrap": read_bootstrap(str(self.workdir / n / "etcd.conf.yml"))}}
            for n in names}
        return etcd_plan([self.members[n] for n in names], hostvars, list(live), "tok-%s" % self.suite)

    def prepare(self, name, bootstrap, extra=None):
        (self.workdir / name).mkdir(exist_ok=True)
        self.install_certs(name)
        path = self.write_config(name, self.config(name, bootstrap, extra))
        self.services[name] = ProcessService([self.etcd, "--config-file", str(path)], self.workdir / name / "etcd.log")

    def bootstrap(self, names):
        self.issue()
        plan = self.plan(names)
        for name in names:
            self.prepare(name, plan[name]["bootstrap"])
        for name in names:
            self.services[name].start()
        self.wait_healthy(names)

    def endpoints(self, names):
        return [self.members[n]["client_url"] for n in names]

    def etcdctl(self, name, endpoints=None, command_timeout=10):
        pki = self.workdir / name / "pki" / "current"
        return Etcdctl(self.etcdctl_bin, run, endpoints or [self.members[name]["client_url"]], str(pki / "ca.pem"),
                       str(pki / "admin.pem"), str(pki / "admin-key.pem"), dial_timeout=2, command_timeout=command_timeout)

    def ops(self, name):
        return Ops(self, name)

    def wait_healthy(self, names, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            health, errors = self.etcdctl(names[0], command_timeout=SHORT_TIMEOUT).health(self.endpoints(names))
            if not errors and len(health) == len(names):
                return
            if time.monotonic() > deadline:
                logs = {n: (self.workdir / n / "etcd.log").read_text()[-1500:] for n in names}
                raise AssertionError("cluster not healthy: %s\n%s" % (errors, logs))
            time.sleep(0.3)

    def log(self, name):
        return (self.workdir / name / "etcd.log").read_text()
