# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe and selection logic without daemons: scripted HTTP/2 peers on temporary sockets,
plain sockets, stale socket files, and hand-built endpoint tables for selection."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as g


def _read_exact(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class ScriptedPeer:
    """A unix socket server. ``handler(conn, request)`` answers each connection.

    For HTTP/2 peers ``request`` is the decoded request (path and DATA payload) read after the
    client preface; ``frames_after`` records what the client sent after the answer.
    """

    def __init__(self, path, handler, http2=True):
        self.path = str(path)
        self.handler = handler
        self.http2 = http2
        self.requests = []
        self.frames_after = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return "unix://" + self.path

    def _read_request(self, conn):
        assert _read_exact(conn, len(g.PREFACE)) == g.PREFACE
        decoder = g.HpackDecoder()
        request = {"frames": []}
        while True:
            length, ftype, flags, stream = g.parse_frame_header(_read_exact(conn, 9))
            payload = _read_exact(conn, length) if length else b""
            request["frames"].append((ftype, flags, stream))
            if ftype == g.FRAME_HEADERS:
                request["headers"] = dict(decoder.decode(payload))
            if ftype == g.FRAME_DATA:
                request["data"] = payload
                if flags & g.FLAG_END_STREAM:
                    return request

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn = self.sock.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(2)
                    request = self._read_request(conn) if self.http2 else conn.recv(4096)
                    self.requests.append(request)
                    self.handler(conn, request)
                    conn.settimeout(0.5)
                    while True:
                        header = _read_exact(conn, 9)
                        length, ftype, flags, stream = g.parse_frame_header(header)
                        payload = _read_exact(conn, length) if length else b""
                        self.frames_after.append((ftype, flags, stream, payload))
                except (OSError, EOFError, AssertionError):
                    pass

    def close(self):
        self.stopping.set()
        self.thread.join(3)
        self.sock.close()


@pytest.fixture
def peer(tmp_path):
    peers = []

    def make(handler, name="peer.sock", http2=True):
        server = ScriptedPeer(tmp_path / name, handler, http2)
        peers.append(server)
        return server

    yield make
    for server in peers:
        server.close()


SERVER_SETTINGS = g.frame(g.FRAME_SETTINGS, 0, 0, struct.pack(">HI", g.SETTINGS_MAX_FRAME_SIZE, 16384))


def _headers_frame(headers, flags=g.FLAG_END_HEADERS):
    return g.frame(g.FRAME_HEADERS, flags, 1, g.encode_headers(headers))


def _trailers(status, message=""):
    fields = [("grpc-status", str(status))]
    if message:
        fields.append(("grpc-message", message))
    return fields


def cri_version_message(name="containerd", version="1.7.24", api="v1"):
    return (g.encode_string_field(1, "0.1.0") + g.encode_string_field(2, name)
            + g.encode_string_field(3, version) + g.encode_string_field(4, api))


def grpc_router(routes):
    """Answer like a gRPC server: ``routes`` maps a method path to (status, message bytes or text)."""

    def handler(conn, request):
        status, body = routes.get(request["headers"][":path"], (12, "unknown service " + request["headers"][":path"].split("/")[1]))
        out = SERVER_SETTINGS
        if status == 0:
            out += _headers_frame([(":status", "200"), ("content-type", "application/grpc")])
            out += g.frame(g.FRAME_DATA, 0, 1, g.grpc_message(body))
            out += _headers_frame(_trailers(0), g.FLAG_END_HEADERS | g.FLAG_END_STREAM)
        else:
            out += _headers_frame([(":status", "200"), ("content-type", "application/grpc")] + _trailers(status, body),
                                  g.FLAG_END_HEADERS | g.FLAG_END_STREAM)
        conn.sendall(out)

    return handler


# ---------------------------------------------------------------- the HTTP/2 client


def test_client_handles_ping_padding_continuation_and_trailers(peer):
    def handler(conn, request):
        block = g.encode_headers(_trailers(0))
        padded = bytes([3]) + b"\x00\x00\x00\x01\x10" + g.encode_headers([(":status", "200"), ("content-type", "application/grpc")]) + b"\x00" * 3
        conn.sendall(
            SERVER_SETTINGS
            + g.frame(g.FRAME_PING, 0, 0, b"12345678")
            + g.frame(g.FRAME_WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000))
            + g.frame(g.FRAME_HEADERS, g.FLAG_END_HEADERS | g.FLAG_PADDED | g.FLAG_PRIORITY, 1, padded)
            + g.frame(g.FRAME_DATA, g.FLAG_PADDED, 1, b"\x02" + g.grpc_message(cri_version_message())[:7] + b"\x00\x00")
            + g.frame(g.FRAME_DATA, 0, 1, g.grpc_message(cri_version_message())[7:])
            + g.frame(g.FRAME_HEADERS, g.FLAG_END_STREAM, 1, block[:5])
            + g.frame(g.FRAME_CONTINUATION, g.FLAG_END_HEADERS, 1, block[5:])
        )

    server = peer(handler)
    result = g.grpc_unary(server.path, "/runtime.v1.RuntimeService/Version", b"", timeout=2)
    assert result.ok
    assert g.field_text(result.message_fields, 2) == "containerd"
    request = server.requests[0]
    assert request["headers"][":path"] == "/runtime.v1.RuntimeService/Version"
    assert request["headers"]["content-type"] == "application/grpc"
    assert request["headers"]["te"] == "trailers"
    assert request["data"] == g.grpc_message(b"")
    server.close()
    acks = [f for f in server.frames_after if f[0] in (g.FRAME_PING, g.FRAME_SETTINGS)]
    assert (g.FRAME_SETTINGS, g.FLAG_ACK, 0, b"") in acks
    assert (g.FRAME_PING, g.FLAG_ACK, 0, b"12345678") in acks


def test_client_reads_trailers_only_error(peer):
    server = peer(grpc_router({}))
    result = g.grpc_unary(server.path, "/runtime.v1.RuntimeService/Version", b"", timeout=2)
    assert not result.ok
    assert result.status == g.UNIMPLEMENTED
    assert result.describe() == "UNIMPLEMENTED (12): unknown service runtime.v1.RuntimeService"


@pytest.mark.parametrize("answer, error, match", [
    (g.frame(g.FRAME_RST_STREAM, 0, 1, struct.pack(">I", 7)), g.ProtocolError, "reset the stream \\(REFUSED_STREAM\\)"),
    (g.frame(g.FRAME_GOAWAY, 0, 0, struct.pack(">II", 0, 1) + b"bad preface"), g.ProtocolError, "GOAWAY PROTOCOL_ERROR: bad preface"),
    (g.frame(g.FRAME_CONTINUATION, g.FLAG_END_HEADERS, 1, b""), g.ProtocolError, "CONTINUATION without HEADERS"),
    (_headers_frame([(":status", "200")], 0) + g.frame(g.FRAME_DATA, 0, 1, b""), g.ProtocolError, "interrupted"),
])
def test_client_protocol_errors(peer, answer, error, match):
    server = peer(lambda conn, request: conn.sendall(SERVER_SETTINGS + answer))
    with pytest.raises(error, match=match):
        g.grpc_unary(server.path, "/x.Y/Z", b"", timeout=2)


def test_client_times_out_on_a_silent_peer(peer):
    server = peer(lambda conn, request: conn.sendall(SERVER_SETTINGS))
    with pytest.raises(g.Timeout, match="no complete answer within 0.3s"):
        g.grpc_unary(server.path, "/x.Y/Z", b"", timeout=0.3)


def test_client_reports_what_a_non_http2_peer_said(peer):
    server = peer(lambda conn, request: conn.sendall(b"220 smtp ready\r\n"), http2=False)
    with pytest.raises(g.NotHttp2, match="answered '220 smtp ready', not an HTTP/2 server preface") as exc:
        g.grpc_unary(server.path, "/x.Y/Z", b"", timeout=2)
    assert exc.value.answer.startswith(b"220 smtp ready")


def test_client_peer_that_hangs_up(peer):
    server = peer(lambda conn, request: None, http2=False)
    with pytest.raises(g.NotHttp2, match="without an HTTP/2 answer"):
        g.grpc_unary(server.path, "/x.Y/Z", b"", timeout=2)


def test_client_missing_and_stale(tmp_path):
    with pytest.raises(g.NotFound):
        g.grpc_unary(str(tmp_path / "nothing.sock"), "/x.Y/Z")
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    with pytest.raises(g.NotListening, match="connection refused"):
        g.grpc_unary(str(stale), "/x.Y/Z")


# ---------------------------------------------------------------- probing one endpoint


def _probe(server_or_path, **kwargs):
    path = getattr(server_or_path, "path", server_or_path)
    return cs.probe_endpoint("unix://" + str(path), str(path), **kwargs)


def test_probe_cri_v1_runtime(peer):
    server = peer(grpc_router({cs.CRI_V1_VERSION: (0, cri_version_message("cri-o", "1.31.2"))}))
    entry = _probe(server)
    assert entry["cri"] is True and entry["cri_api"] == "v1" and entry["listening"] and entry["exists"]
    assert (entry["runtime"], entry["runtime_version"]) == ("crio", "1.31.2")
    assert entry["reason"] == "answers runtime.v1.RuntimeService/Version (gRPC probe): crio 1.31.2, CRI API v1"
    assert g.decode_fields(server.requests[0]["data"][5:]) == {1: [b"v1"]}


def test_probe_cri_dockerd_reports_docker_runtime_name(peer):
    server = peer(grpc_router({cs.CRI_V1_VERSION: (0, cri_version_message("docker", "28.5.2"))}))
    assert _probe(server)["runtime"] == "cri-dockerd"


def test_probe_v1alpha2_only_runtime_is_not_cri(peer):
    server = peer(grpc_router({cs.CRI_V1ALPHA2_VERSION: (0, cri_version_message("containerd", "1.5.9", "v1alpha2"))}))
    entry = _probe(server)
    assert entry["cri"] is False and entry["cri_api"] == "v1alpha2" and entry["runtime_version"] == "1.5.9"
    assert "answers only the CRI v1alpha2 API" in entry["reason"] and "kubelet 1.26 and later need runtime.v1" in entry["reason"]


def test_probe_containerd_with_failed_cri_plugin(peer):
    status = g.encode_varint(1 << 3) + g.encode_varint(9) + g.encode_string_field(2, "invalid cgroup driver")
    plugin = g.encode_string_field(1, "io.containerd.grpc.v1") + g.encode_string_field(2, "cri") + g.encode_string_field(7, status)
    server = peer(grpc_router({
        cs.CONTAINERD_VERSION: (0, g.encode_string_field(1, "1.7.24") + g.encode_string_field(2, "abc")),
        cs.CONTAINERD_PLUGINS: (0, g.encode_string_field(1, plugin)),
    }))
    entry = _probe(server)
    assert entry["cri"] is False and entry["runtime"] == "containerd" and entry["runtime_version"] == "1.7.24"
    assert entry["reason"] == (
        "containerd 1.7.24 answers its own API but not the CRI: runtime.v1.RuntimeService/Version -> UNIMPLEMENTED (12): "
        "unknown service runtime.v1.RuntimeService; its cri plugin (io.containerd.grpc.v1) failed to start: "
        "invalid cgroup driver (gRPC probe)")
    assert g.decode_fields(server.requests[-1]["data"][5:]) == {1: [b"id==cri"]}


def test_probe_grpc_server_without_cri(peer):
    entry = _probe(peer(grpc_router({})))
    assert entry["cri"] is False and entry["runtime"] is None
    assert entry["reason"].startswith("a gRPC server without the CRI: runtime.v1.RuntimeService/Version -> UNIMPLEMENTED")


def test_probe_undecided_then_crictl_decides(peer):
    server = peer(grpc_router({cs.CRI_V1_VERSION: (14, "connection error")}))
    calls = []

    def run_command(argv):
        calls.append(argv)
        return 0, "Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  v2.1.4\nRuntimeApiVersion:  v1\n", ""

    assert _probe(server)["cri"] is None
    entry = _probe(server, crictl="/usr/bin/crictl", run_command=run_command, timeout=2.0)
    assert calls == [["/usr/bin/crictl", "--runtime-endpoint", server.endpoint, "--timeout", "2s", "version"]]
    assert entry["cri"] is True and entry["runtime_version"] == "v2.1.4"
    assert "UNAVAILABLE (14): connection error" in entry["reason"]
    assert entry["reason"].endswith("; crictl version decided: containerd v2.1.4, CRI API v1")


def test_probe_crictl_failure_keeps_it_undecided(peer):
    server = peer(grpc_router({cs.CRI_V1_VERSION: (14, "connection error")}))
    entry = _probe(server, crictl="/usr/bin/crictl", run_command=lambda argv: (1, "", "context deadline exceeded\n"))
    assert entry["cri"] is None
    assert entry["reason"].endswith("; crictl version failed (rc=1): context deadline exceeded; CRI capability undecided")


def test_probe_docker_engine_api_socket(peer):
    reply = b"HTTP/1.1 400 Bad Request\r\nApi-Version: 1.47\r\nServer: Docker/28.5.2 (linux)\r\n\r\n"
    entry = _probe(peer(lambda conn, request: conn.sendall(reply), http2=False))
    assert entry["cri"] is False and entry["runtime"] == "docker" and entry["listening"]
    assert "only through cri-dockerd" in entry["reason"]


def test_probe_without_grpc(peer):
    server = peer(grpc_router({cs.CRI_V1_VERSION: (0, cri_version_message())}))
    entry = _probe(server, probe=False)
    assert entry["cri"] is None and entry["listening"] and entry["runtime"] is None
    assert server.requests == []


def test_probe_files_that_are_not_listening_sockets(tmp_path):
    regular = tmp_path / "file.sock"
    regular.write_text("")
    assert _probe(regular)["reason"] == "%s exists but is not a unix socket" % regular
    assert _probe(tmp_path / "none.sock")["reason"] == "no such socket"
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    entry = _probe(stale)
    assert (entry["exists"], entry["listening"], entry["cri"]) == (True, False, False)
    assert entry["reason"] == "stale socket file: nothing listens on it (connection refused)"


def test_two_spellings_of_one_socket_count_once(peer, tmp_path):
    (tmp_path / "run").mkdir()
    os.symlink(str(tmp_path / "run"), str(tmp_path / "varrun"))
    peer(grpc_router({cs.CRI_V1_VERSION: (0, cri_version_message())}), name="run/cri.sock")
    candidates = [str(tmp_path / "run" / "cri.sock"), "unix://" + str(tmp_path / "varrun" / "cri.sock")]
    endpoints, selected = cs.detect(candidates)
    assert selected == "unix://" + str(tmp_path / "run" / "cri.sock")
    assert endpoints[1]["alias_of"] == selected and endpoints[1]["cri"] is True
    assert endpoints[1]["path"] == str(tmp_path / "varrun" / "cri.sock")
    # the second spelling may be preferred explicitly
    assert cs.detect(candidates, preferred=candidates[1])[1] == candidates[1]


# ---------------------------------------------------------------- candidates and selection


def test_known_candidates_are_kubeadms_in_both_spellings():
    paths = {p for dummy, p in cs.build_candidates(cs.KNOWN_CRI_ENDPOINTS)}
    for name in ("containerd/containerd.sock", "crio/crio.sock", "cri-dockerd.sock"):
        assert {"/run/" + name, "/var/run/" + name} <= paths


@pytest.mark.parametrize("value, expected", [
    ("unix:///run/containerd/containerd.sock", ("unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock")),
    ("/run/crio/crio.sock", ("unix:///run/crio/crio.sock", "/run/crio/crio.sock")),
    ("unix:////var//run/x.sock", ("unix:///var/run/x.sock", "/var/run/x.sock")),
])
def test_normalize_endpoint(value, expected):
    assert cs.normalize_endpoint(value) == expected


@pytest.mark.parametrize("candidates, extra, preferred, match", [
    (["tcp://127.0.0.1:1234"], [], None, "candidates: 'tcp://127.0.0.1:1234' is not a unix socket endpoint"),
    ([], ["unix://run/x.sock"], None, "extra_candidates: 'unix://run/x.sock': the socket path must be absolute"),
    (["/run/x.sock"], [], "docker", ("preferred \\(inventory variable kubeforge_cri_socket\\) must be a unix:// endpoint URL, "
                                     "an absolute socket path or one of containerd, crio, cri-dockerd; got 'docker'")),
    ([], [], None, "candidates and extra_candidates are both empty"),
])
def test_bad_options(candidates, extra, preferred, match):
    with pytest.raises(ValueError, match=match):
        cs.detect(candidates, extra, preferred)


def test_build_candidates_adds_extra_and_preferred_once():
    pairs = cs.build_candidates(["/a.sock", "unix:///a.sock"], ["/b.sock"], "/c.sock")
    assert [u for u, dummy in pairs] == ["unix:///a.sock", "unix:///b.sock", "unix:///c.sock"]
    assert [u for u, dummy in cs.build_candidates(["/a.sock"], [], "containerd")] == ["unix:///a.sock"]


def _entry(endpoint, cri, runtime=None, version=None, listening=None, alias_of=None, reason="r"):
    return {
        "endpoint": endpoint, "path": endpoint[7:], "exists": listening is not False,
        "listening": bool(cri) if listening is None else listening, "cri": cri, "cri_api": "v1" if cri else None,
        "runtime": runtime, "runtime_version": version, "reason": reason, "alias_of": alias_of,
    }


CTRD = _entry("unix:///run/containerd/containerd.sock", True, "containerd", "1.7.24")
CTRD_ALIAS = _entry("unix:///var/run/containerd/containerd.sock", True, "containerd", "1.7.24",
                    alias_of="unix:///run/containerd/containerd.sock")
CTRD_NOCRI = _entry("unix:///run/containerd/containerd.sock", False, "containerd", "1.6.20", listening=True,
                    reason="containerd 1.6.20 answers its own API but not the CRI")
DOCKERD = _entry("unix:///run/cri-dockerd.sock", True, "cri-dockerd", "28.5.2")
CRIO = _entry("unix:///run/crio/crio.sock", True, "crio", "1.31.2")
STALE = _entry("unix:///run/crio/crio.sock", False, listening=False, reason="stale socket file")
MISSING = _entry("unix:///run/cri-dockerd.sock", False, listening=False, reason="no such socket")


@pytest.mark.parametrize("endpoints, preferred, expected", [
    ([CTRD, CTRD_ALIAS, STALE, MISSING], None, CTRD["endpoint"]),
    ([CTRD_NOCRI, DOCKERD], None, DOCKERD["endpoint"]),  # the Docker + cri-dockerd node of seed 001
    ([CTRD, DOCKERD], "cri-dockerd", DOCKERD["endpoint"]),
    ([CTRD, DOCKERD], "containerd", CTRD["endpoint"]),
    ([CTRD, CTRD_ALIAS, DOCKERD], CTRD_ALIAS["endpoint"], CTRD_ALIAS["endpoint"]),
    ([CTRD, DOCKERD, CRIO], "/run/crio/crio.sock", CRIO["endpoint"]),
])
def test_select(endpoints, preferred, expected):
    assert cs.select(endpoints, preferred) == expected


def test_select_ambiguous_names_each_runtime_and_the_variable():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD, CTRD_ALIAS, DOCKERD])
    assert str(exc.value) == (
        "Found multiple CRI endpoints on this node: unix:///run/containerd/containerd.sock (containerd 1.7.24), "
        "unix:///run/cri-dockerd.sock (cri-dockerd 28.5.2). kubeadm, kubelet and crictl need exactly one: set the inventory "
        "variable kubeforge_cri_socket (this module's preferred option) to one of these endpoint URLs, or to a runtime name "
        "(containerd, crio, cri-dockerd).")
    assert exc.value.endpoints[0] is CTRD


def test_select_none_names_the_runtime_roles():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([STALE, MISSING])
    assert str(exc.value) == (
        "No CRI endpoint found on this node. Checked: unix:///run/crio/crio.sock: stale socket file; "
        "unix:///run/cri-dockerd.sock: no such socket. Install and start a container runtime that serves the CRI, e.g. with "
        "the role kubeforge.cluster.containerd (containerd with its cri plugin enabled) or kubeforge.cluster.cri_dockerd "
        "(Docker Engine with cri-dockerd); if it listens on another socket, add that socket to extra_candidates.")


def test_select_none_with_cri_less_containerd_says_how_to_enable_it():
    with pytest.raises(cs.CriSocketError, match="containerd at unix:///run/containerd/containerd.sock has no CRI: enable its cri plugin"):
        cs.select([CTRD_NOCRI, MISSING])


def test_select_preferred_not_cri_lists_what_is():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD_NOCRI, DOCKERD], CTRD_NOCRI["endpoint"])
    assert str(exc.value) == (
        "preferred=unix:///run/containerd/containerd.sock (inventory variable kubeforge_cri_socket) is not a usable CRI "
        "endpoint: containerd 1.6.20 answers its own API but not the CRI. CRI endpoints on this node: "
        "unix:///run/cri-dockerd.sock (cri-dockerd 28.5.2). Set kubeforge_cri_socket to one of them.")


def test_select_preferred_not_cri_and_nothing_else():
    with pytest.raises(cs.CriSocketError, match="^preferred=unix:///run/crio/crio.sock .*stale socket file. No CRI endpoint found"):
        cs.select([STALE, MISSING], "unix:///run/crio/crio.sock")


def test_select_preferred_endpoint_not_among_entries():
    with pytest.raises(cs.CriSocketError, match="is not a usable CRI endpoint: not probed"):
        cs.select([CTRD], "/run/other.sock")


def test_select_preferred_runtime_missing():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD, MISSING], "crio")
    assert str(exc.value) == (
        "preferred=crio (inventory variable kubeforge_cri_socket): no CRI endpoint of that runtime on this node. CRI endpoints "
        "found: unix:///run/containerd/containerd.sock (containerd 1.7.24). Set kubeforge_cri_socket to one of them or install crio.")
    with pytest.raises(cs.CriSocketError, match="^preferred=crio: No CRI endpoint found on this node"):
        cs.select([MISSING], "crio")


def test_select_preferred_runtime_ambiguous():
    second = _entry("unix:///srv/containerd.sock", True, "containerd", "2.1.9")
    with pytest.raises(cs.CriSocketError, match="preferred=containerd matches several CRI endpoints: .*containerd 1.7.24.*"
                                                "containerd 2.1.9.*Set the inventory variable kubeforge_cri_socket to one endpoint URL"):
        cs.select([CTRD, second], "containerd")


def test_select_without_probe_counts_listening_sockets():
    listening = _entry("unix:///run/containerd/containerd.sock", None, listening=True)
    other = _entry("unix:///run/cri-dockerd.sock", None, listening=True)
    assert cs.select([listening, MISSING], probe=False) == listening["endpoint"]
    with pytest.raises(cs.CriSocketError, match="^Found multiple listening sockets \\(probe=false\\) on this node"):
        cs.select([listening, other], probe=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_socket_the_user_may_not_open_is_undecided():
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    workdir = tempfile.TemporaryDirectory(prefix="kf-cri-perm-", dir="/tmp")  # pytest's tmp_path is 0700 below /tmp
    os.chmod(workdir.name, 0o755)
    path = Path(workdir.name) / "private.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    path.chmod(0o600)
    collections = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(cs.__file__))))
    code = ("import json, sys; sys.path.insert(0, %r); "
            "from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs; "
            "print(json.dumps([cs.probe_endpoint('unix://' + p, p, probe=b) for p, b in ((%r, True), (%r, False))]))"
            % (os.path.dirname(os.path.dirname(collections)), str(path), str(path)))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable  # a venv below /root is not for nobody
    try:
        proc = subprocess.run([python, "-c", code], user=65534, group=65534, capture_output=True, text=True, check=False)
    except PermissionError as exc:
        pytest.skip("user nobody cannot run %s: %s" % (python, exc))
    finally:
        server.close()
        workdir.cleanup()
    if proc.returncode != 0 and ("ModuleNotFoundError" in proc.stderr or "Permission denied" in proc.stderr):
        pytest.skip("the checkout is not readable by user nobody: %s" % proc.stderr.strip()[-200:])
    assert proc.returncode == 0, proc.stderr
    probed, connected = json.loads(proc.stdout)
    for entry in (probed, connected):
        assert (entry["exists"], entry["listening"], entry["cri"]) == (True, False, None)
        assert entry["reason"].startswith("permission denied connecting to the socket (run as root / become: true)")
    assert probed["reason"].endswith("; CRI capability undecided")
