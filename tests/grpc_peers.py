# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-side HTTP/2 peers for the stdlib gRPC probe: a scripted server on a unix socket, answers shaped like a
gRPC server's, and the HPACK Huffman encoder that only tests need (the probe itself never Huffman-encodes).

Used by tests/unit/plugins/module_utils/test_{hpack,grpc_probe,grpc_probe_hostile,cri_socket}.py and the
benchmark benchmarks/cri_socket_probe.py.
"""

from __future__ import annotations

import socket
import struct
import threading

from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as g
from ansible_collections.kubeforge.cluster.plugins.module_utils import _hpack as h


def huffman_encode(data):
    """Huffman-encode ``data`` (bytes), padding the last octet with the EOS prefix (ones)."""
    acc = 0
    bits = 0
    out = bytearray()
    for byte in bytearray(data):
        acc = (acc << h.HUFFMAN_CODE_LENGTHS[byte]) | h.HUFFMAN_CODES[byte]
        bits += h.HUFFMAN_CODE_LENGTHS[byte]
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits:
        out.append(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xFF)
    return bytes(out)


def huffman_literal(name, value):
    """A "literal without indexing, new name" header field with both strings Huffman-coded."""
    def string(text):
        coded = huffman_encode(text.encode("utf-8") if isinstance(text, str) else text)
        return h.hpack_encode_integer(len(coded), 7, 0x80) + coded
    return b"\x00" + string(name) + string(value)


def read_exact(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


SERVER_SETTINGS = g.frame(g.FRAME_SETTINGS, 0, 0, struct.pack(">HI", g.SETTINGS_MAX_FRAME_SIZE, 16384))


def headers_frame(headers, flags=g.FLAG_END_HEADERS):
    return g.frame(g.FRAME_HEADERS, flags, 1, h.encode_headers(headers))


def trailers(status, message=""):
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
            out += headers_frame([(":status", "200"), ("content-type", "application/grpc")])
            out += g.frame(g.FRAME_DATA, 0, 1, g.grpc_message(body))
            out += headers_frame(trailers(0), g.FLAG_END_HEADERS | g.FLAG_END_STREAM)
        else:
            out += headers_frame([(":status", "200"), ("content-type", "application/grpc")] + trailers(status, body),
                                 g.FLAG_END_HEADERS | g.FLAG_END_STREAM)
        conn.sendall(out)

    return handler


class ScriptedPeer:
    """A unix socket server. ``handler(conn, request)`` answers each connection (in its own thread).

    For HTTP/2 peers ``request`` is the decoded request (path and DATA payload) read after the
    client preface (``http2=False``: the first octets the client sent); ``frames_after`` records what the
    client sent after the answer. ``backlog`` is the listen backlog; ``accept=False`` never accepts.
    """

    def __init__(self, path, handler, http2=True, backlog=8, accept=True):
        self.path = str(path)
        self.handler = handler
        self.http2 = http2
        self.requests = []
        self.frames_after = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(backlog)
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.threads = []
        self.thread = threading.Thread(target=self._serve, daemon=True) if accept else None
        if self.thread is not None:
            self.thread.start()

    @property
    def endpoint(self):
        return "unix://" + self.path

    def _read_request(self, conn):
        assert read_exact(conn, len(g.PREFACE)) == g.PREFACE
        decoder = h.HpackDecoder()
        request = {"frames": []}
        while True:
            length, ftype, flags, stream = g.parse_frame_header(read_exact(conn, 9))
            payload = read_exact(conn, length) if length else b""
            request["frames"].append((ftype, flags, stream, payload))
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
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, conn):
        with conn:
            try:
                conn.settimeout(2)
                request = self._read_request(conn) if self.http2 else conn.recv(4096)
                self.requests.append(request)
                self.handler(conn, request)
                conn.settimeout(0.5)
                while True:  # until the client hangs up (or 0.5 s of silence)
                    header = read_exact(conn, 9)
                    length, ftype, flags, stream = g.parse_frame_header(header)
                    payload = read_exact(conn, length) if length else b""
                    self.frames_after.append((ftype, flags, stream, payload))
            except (OSError, EOFError, AssertionError):
                pass

    def close(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(3)
        for thread in self.threads:
            thread.join(3)
        self.sock.close()
