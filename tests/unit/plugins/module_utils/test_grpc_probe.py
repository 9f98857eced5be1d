# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stdlib gRPC client: protobuf wire format, HTTP/2 frames, and whole calls against scripted peers
(ping, padding, CONTINUATION, trailers-only errors, protocol errors, silence, non-HTTP/2 peers)."""

from __future__ import annotations

import socket
import struct

import pytest
from grpc_peers import SERVER_SETTINGS, ScriptedPeer, cri_version_message, grpc_router, headers_frame, trailers
from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as g
from ansible_collections.kubeforge.cluster.plugins.module_utils import _hpack as h


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


def test_protobuf_fields():
    # CRI VersionResponse as containerd 1.6.20 sends it
    message = (g.encode_string_field(1, "0.1.0") + g.encode_string_field(2, "containerd")
               + g.encode_string_field(3, "1.6.20~ds1") + g.encode_string_field(4, "v1"))
    fields = g.decode_fields(message)
    assert g.field_text(fields, 2) == "containerd"
    assert g.field_text(fields, 3) == "1.6.20~ds1"
    assert g.field_text(fields, 9, "none") == "none"
    mixed = g.encode_varint((1 << 3) | 0) + g.encode_varint(300) + g.encode_varint((2 << 3) | 5) + b"abcd"
    assert g.decode_fields(mixed) == {1: [300], 2: [b"abcd"]}


@pytest.mark.parametrize("raw, error", [
    (b"\x0a\x05abc", "truncated"),
    (b"\x0b", "wire type"),
    (b"\x08\xff", "truncated varint"),
])
def test_protobuf_errors(raw, error):
    with pytest.raises(ValueError, match=error):
        g.decode_fields(raw)


def test_frame_header_round_trip():
    data = g.frame(g.FRAME_HEADERS, g.FLAG_END_HEADERS | g.FLAG_END_STREAM, 1, b"x" * 70000)
    assert g.parse_frame_header(data[:9]) == (70000, g.FRAME_HEADERS, 5, 1)


def test_grpc_message_framing():
    assert g.grpc_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert g.split_grpc_messages(g.grpc_message(b"a") + g.grpc_message(b"")) == [b"a", b""]
    with pytest.raises(g.ProtocolError, match="compressed"):
        g.split_grpc_messages(b"\x01" + struct.pack(">I", 0))
    with pytest.raises(g.ProtocolError, match="truncated"):
        g.split_grpc_messages(b"\x00\x00\x00\x00\x05ab")


def test_grpc_result_status_and_message():
    result = g.GrpcResult("/a/B", [(":status", "200")], [("grpc-status", "12"), ("grpc-message", "unknown service a%2Fb")], [], 0.0)
    assert not result.ok
    assert result.describe() == "UNIMPLEMENTED (12): unknown service a/b"
    missing = g.GrpcResult("/a/B", [(":status", "404"), ("content-type", "text/plain")], [], [], 0.0)
    assert missing.describe() == "HTTP status 404 without grpc-status (content-type 'text/plain')"


# ---------------------------------------------------------------- the HTTP/2 client


def test_client_handles_ping_padding_continuation_andtrailers(peer):
    def handler(conn, request):
        block = h.encode_headers(trailers(0))
        padded = bytes([3]) + b"\x00\x00\x00\x01\x10" + h.encode_headers([(":status", "200"), ("content-type", "application/grpc")]) + b"\x00" * 3
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
    (headers_frame([(":status", "200")], 0) + g.frame(g.FRAME_DATA, 0, 1, b""), g.ProtocolError, "interrupted"),
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
