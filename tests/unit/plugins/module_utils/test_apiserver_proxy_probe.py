# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The forward check against real sockets on loopback: TLS servers with their own certificates as upstreams and a
scripted L4 forwarder as the proxy (the real nginx and haproxy are in tests/integration/test_apiserver_proxy_real.py)."""

from __future__ import annotations

import datetime
import itertools
import socket
import ssl
import threading

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _apiserver_proxy_probe as probe
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import parse_upstream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory, name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / (name + ".crt"), directory / (name + ".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class Listener:
    """A thread accepting on 127.0.0.1:<free port>; ``handle(conn)`` per connection in its own thread."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self):
        self.sock.close()


def tls_server(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn):
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass
    return Listener(handle)


def forwarder(ports):
    """A round-robin L4 forwarder to 127.0.0.1:<ports>; closes the client when the upstream refuses."""
    turn = itertools.cycle(ports)

    def pipe(source, target):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle(conn):
        try:
            upstream = socket.create_connection(("127.0.0.1", next(turn)), timeout=2)
        except OSError:
            conn.close()
            return
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)
    return Listener(handle)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def upstreams(tmp_path):
    servers = [tls_server(*self_signed(tmp_path, "cp%d" % index)) for index in (1, 2, 3)]
    yield servers
    for server in servers:
        server.close()


def targets(ports):
    return [parse_upstream("u", {"host": "127.0.0.1", "port": port, "name": "cp%d" % index}, 5443) for index, port in enumerate(ports, 1)]


def test_forwards_to_every_upstream(upstreams):
    proxy = forwarder([server.port for server in upstreams])
    report = probe.check("127.0.0.1", proxy.port, targets([server.port for server in upstreams]), timeout=2)
    assert report["listening"] and report["forwarded"] and report["distinguishable"]
    assert [(row["name"], row["up"], row["via_proxy"]) for row in report["upstreams"]] == [
        ("cp1", True, True), ("cp2", True, True), ("cp3", True, True)]
    assert 3 <= report["proxied_connections"] <= 9 and report["proxied_failures"] == []


def test_a_dead_upstream_is_named_with_its_reason(upstreams):
    dead = free_port()
    proxy = forwarder([upstreams[0].port, dead])
    report = probe.check("127.0.0.1", proxy.port, targets([upstreams[0].port, dead]), timeout=1, attempts=6)
    assert report["up"] == ["cp1"] and report["down"] == ["cp2"]
    assert report["upstreams"][1]["reason"] == "connection refused (nothing listens there)"
    assert report["upstreams"][0]["via_proxy"] is True and report["forwarded"]


def test_a_listener_that_reaches_no_upstream(upstreams):
    proxy = forwarder([free_port()])  # accepts, then closes every connection
    report = probe.check("127.0.0.1", proxy.port, targets([upstreams[0].port]), timeout=1, attempts=3)
    assert report["listening"] and not report["forwarded"]
    assert report["proxied_connections"] == 3
    assert all("closed by the proxy" in reason for reason in report["proxied_failures"]), report["proxied_failures"]


def test_nothing_listens(upstreams):
    report = probe.check("127.0.0.1", free_port(), targets([upstreams[0].port]), timeout=1, settle=0.3)
    assert not report["listening"] and report["listen_error"] == "connection refused (nothing listens there)"


def test_no_upstream_up_still_checks_the_listener():
    proxy = forwarder([free_port()])
    report = probe.check("0.0.0.0", proxy.port, targets([free_port()]), timeout=1)
    assert report["listener"] == "127.0.0.1:%d" % proxy.port and report["listening"]
    assert report["up"] == [] and report["proxied_connections"] == 0


def test_without_tls(upstreams):
    ports = [server.port for server in upstreams]
    report = probe.check("127.0.0.1", forwarder(ports).port, targets(ports), timeout=1, tls=False)
    assert report["forwarded"] and [row["via_proxy"] for row in report["upstreams"]] == [None, None, None]
    report = probe.check("127.0.0.1", forwarder([free_port()]).port, targets(ports), timeout=1, tls=False, attempts=2)
    assert not report["forwarded"]


def test_describe_error():
    assert probe.describe_error(socket.gaierror(-2, "Name or service not known"), 2) == "the name does not resolve (Name or service not known)"
    assert probe.describe_error(TimeoutError(), 2) == "no answer within 2s"
    assert probe.describe_error(ConnectionRefusedError(111, "Connection refused"), 2) == "connection refused (nothing listens there)"
    assert probe.listener_target("::") == "::1" and probe.listener_target("10.0.0.1") == "10.0.0.1"
    assert probe.connect_once("name.invalid", 5443, 1, True)[1].startswith("the name does not resolve")
