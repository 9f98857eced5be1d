# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""apiserver_proxy against the real nginx 1.22 (+ libnginx-mod-stream) and haproxy 2.6 of Debian bookworm.

The binaries judge what kubeforge.cluster.apiserver_proxy_config renders (through the module's own NodeOps.validate),
run it with STAND-IN TLS apiservers (tools/apiserver_standin.py; kube-apiserver is not available here), reload it
(master PID kept, a connection opened before the reload still answered), and the forward check probes them. The
lab scenario (molecule/apiserver_proxy) does the same under systemd on real machines.
"""

from __future__ import annotations

import os
import socket
import ssl

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _apiserver_proxy_node as node
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_probe import check
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import build_spec, render_config
from proxy_daemons import LocalModule, Proxy, Standin, binaries

pytestmark = [pytest.mark.real_binary, pytest.mark.skipif(os.geteuid() != 0, reason="the proxies' workers switch to www-data")]

BACKENDS = ("nginx", "haproxy")
CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


@pytest.fixture(scope="module")
def tools():
    return binaries()


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    directory = tmp_path_factory.mktemp("standins")
    servers = [Standin(directory, "cp%d" % index) for index in (1, 2, 3)]
    yield servers
    for server in servers:
        server.stop()


def validate(tools, backend, **params):
    spec = build_spec(dict({"upstreams": ["10.0.0.11", "10.0.0.12"], "user": "www-data"}, backend=backend, **params))
    ops = node.NodeOps(LocalModule(tools[backend]["env"]))
    return ops.validate(backend, tools[backend]["binary"], render_config(spec, tools[backend].get("stream_module")))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("params", [
    {},
    {"access_log": True, "listen_address": "::", "connect_timeout": "500ms", "proxy_timeout": "1h", "max_fails": 5, "fail_timeout": "30s"},
    {"upstreams": ["localhost:5443", "[::1]:5443", {"host": "127.0.0.2", "port": 7443, "name": "cp 3"}], "listen_address": "0.0.0.0"},
    {"upstreams": ["10.0.%d.%d" % divmod(index, 250) for index in range(40)], "workers": 4, "max_connections": 16384},
], ids=["defaults", "ipv6-wildcard-access-log", "names-ipv6-upstreams", "forty-upstreams"])
def test_real_binary_accepts_what_is_rendered(tools, backend, params):
    validate(tools, backend, **params)


@pytest.mark.parametrize("backend, message", [("nginx", 'host not found in upstream "no-such-apiserver.invalid:5443"'),
                                              ("haproxy", "could not resolve address 'no-such-apiserver.invalid'")])
def test_real_binary_refuses_an_unresolvable_upstream(tools, backend, message):
    with pytest.raises(node.ProxyError) as error:
        validate(tools, backend, upstreams=["10.0.0.11", "no-such-apiserver.invalid"])
    assert "%s refuses the new configuration" % backend in str(error.value) and message in str(error.value)
    assert "<candidate>" in str(error.value) and "/candidate.conf" not in str(error.value)


def get(conn):
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubernetes\r\n\r\n")
    data = b""
    while not data.partition(b"\r\n\r\n")[2].endswith(b"\n"):  # the stand-in's body is one line
        chunk = conn.recv(4096)
        assert chunk, "closed after %r" % data
        data += chunk
    return data.partition(b"\r\n\r\n")[2].decode().split()[-1]


def through(proxy, count):
    answers = {}
    for _request in range(count):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw, CONTEXT.wrap_socket(raw) as conn:
            who = get(conn)
            answers[who] = answers.get(who, 0) + 1
    return answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_spread_reload_and_forward_check(tools, standins, tmp_path, backend):
    upstreams = [{"host": "127.0.0.1", "port": server.port, "name": server.name} for server in standins]
    proxy = Proxy(backend, tools, upstreams[:2], tmp_path, fail_timeout="2s")
    try:
        spread = through(proxy, 8)  # least connections, ties taken in turn (a closing connection may still count)
        assert sorted(spread) == ["cp1", "cp2"] and min(spread.values()) >= 2, spread
        spec = build_spec({"upstreams": upstreams[:2], "listen_port": proxy.port})
        report = check("127.0.0.1", proxy.port, list(spec.upstreams))
        assert report["forwarded"] and [row["via_proxy"] for row in report["upstreams"]] == [True, True]

        # the proxy is not in the unit the module manages, so the port check names it as another process
        foreign, ours = node.port_users("/proc", "127.0.0.1", proxy.port, "kube-apiserver-proxy")
        assert ours == [] and {info["pid"] for info in foreign} & ({proxy.process.pid} | set(proxy.children())), foreign
        assert {info["name"] for info in foreign} == {backend}

        raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held = CONTEXT.wrap_socket(raw)
        first = get(held)
        workers = proxy.children()
        proxy.reload(upstreams, fail_timeout="2s")
        spec = build_spec({"upstreams": upstreams, "listen_port": proxy.port})
        report = check("127.0.0.1", proxy.port, list(spec.upstreams), attempts=12)
        assert [row["via_proxy"] for row in report["upstreams"]] == [True, True, True], report
        assert proxy.process.poll() is None and set(proxy.children()) - set(workers), "no new worker after the reload"
        assert get(held) == first, "the connection opened before the reload was cut"
        held.close()
        assert sorted(through(proxy, 9)) == ["cp1", "cp2", "cp3"]
    finally:
        proxy.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stopped_upstream_costs_no_request(tools, tmp_path, backend):
    servers = [Standin(tmp_path, "cp%d" % index) for index in (1, 2)]
    proxy = Proxy(backend, tools, [{"host": "127.0.0.1", "port": s.port, "name": s.name} for s in servers], tmp_path)
    try:
        servers[1].stop()  # refused connects are retried on the other upstream
        assert through(proxy, 20) == {"cp1": 20}
    finally:
        proxy.stop()
        servers[0].stop()
