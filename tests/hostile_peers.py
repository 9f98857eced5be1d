# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile and broken CRI listeners: handlers for ``grpc_peers.ScriptedPeer(..., http2=False)``.

Used by tests/unit/plugins/module_utils/test_grpc_probe_hostile.py and benchmarks/cri_socket_probe.py.
``HOSTILE`` lists (name, handler, what the probe's reason must say).
"""

from __future__ import annotations

import random
import socket
import struct
import time

from grpc_peers import SERVER_SETTINGS, cri_version_message, headers_frame, huffman_literal, trailers
from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as g
from ansible_collections.kubeforge.cluster.plugins.module_utils import _hpack as h

OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


def forever(conn, first, repeated, pause=0.0):
    """Send ``first`` then ``repeated`` until the client goes away."""
    conn.sendall(first)
    while True:
        conn.sendall(repeated)
        if pause:
            time.sleep(pause)


def wait_for_hangup(conn):
    """Keep the connection open, silent, until the client closes it."""
    while conn.recv(4096):
        pass


def header_flood(conn, request):
    # The attacker: an endless header block of Huffman-coded literals in CONTINUATION frames.
    block = b"".join(huffman_literal("x-flood-%d" % i, "abcdefghij" * 20) for i in range(100))[:16000]
    forever(conn, SERVER_SETTINGS + g.frame(g.FRAME_HEADERS, 0, 1, block), g.frame(g.FRAME_CONTINUATION, 0, 1, block))


def header_drip_flood(conn, request):
    literal = huffman_literal("x-a", "b" * 60)
    forever(conn, SERVER_SETTINGS + g.frame(g.FRAME_HEADERS, 0, 1, literal), g.frame(g.FRAME_CONTINUATION, 0, 1, literal))


def hpack_bomb(conn, request):
    # One 4000-octet literal added to the dynamic table, then referenced by 1-octet indexes: 4 KiB per octet.
    big = b"\x40" + h.hpack_encode_string("x-big") + h.hpack_encode_string("v" * 4000)
    conn.sendall(SERVER_SETTINGS + g.frame(g.FRAME_HEADERS, g.FLAG_END_HEADERS, 1, big + bytes([0x80 | 62]) * 12000))
    wait_for_hangup(conn)


def many_header_blocks(conn, request):
    block = g.frame(g.FRAME_HEADERS, g.FLAG_END_HEADERS, 1, h.encode_headers(OK_HEADERS))
    forever(conn, SERVER_SETTINGS, block)


def endless_data(conn, request):
    forever(conn, SERVER_SETTINGS + headers_frame(OK_HEADERS), g.frame(g.FRAME_DATA, 0, 1, b"\x00" * 16384))


def other_stream_data(conn, request):
    forever(conn, SERVER_SETTINGS, g.frame(g.FRAME_DATA, 0, 3, b"\x00" * 1024))


def ping_flood(conn, request):
    forever(conn, SERVER_SETTINGS, g.frame(g.FRAME_PING, 0, 0, b"12345678"))


def settings_flood(conn, request):
    forever(conn, SERVER_SETTINGS, SERVER_SETTINGS)


def window_update_flood(conn, request):
    forever(conn, SERVER_SETTINGS, g.frame(g.FRAME_WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))


def unknown_frame_flood(conn, request):
    forever(conn, SERVER_SETTINGS, g.frame(0xEE, 0, 1, b"?" * 100))


def empty_data_flood(conn, request):
    forever(conn, SERVER_SETTINGS + headers_frame(OK_HEADERS), g.frame(g.FRAME_DATA, 0, 1, b""))


def slow_drip(conn, request):
    answer = (SERVER_SETTINGS + headers_frame(OK_HEADERS) + g.frame(g.FRAME_DATA, 0, 1, g.grpc_message(cri_version_message()))
              + headers_frame(trailers(0), g.FLAG_END_HEADERS | g.FLAG_END_STREAM))
    for index in range(len(answer)):
        conn.sendall(answer[index:index + 1])
        time.sleep(0.02)


def silent_after_settings(conn, request):
    conn.sendall(SERVER_SETTINGS + headers_frame(OK_HEADERS))
    wait_for_hangup(conn)


def graceful_goaway_then_silence(conn, request):
    conn.sendall(SERVER_SETTINGS + g.frame(g.FRAME_GOAWAY, 0, 0, struct.pack(">II", 1, 0)))
    wait_for_hangup(conn)


def giant_frame(conn, request):
    conn.sendall(SERVER_SETTINGS + struct.pack(">BHBBI", 0xFF, 0xFFFF, g.FRAME_DATA, 0, 1))
    wait_for_hangup(conn)


def garbage(conn, request):
    noise = random.Random(7)
    forever(conn, b"", bytes(noise.getrandbits(8) for _octet in range(4096)))


def garbage_after_settings(conn, request):
    noise = random.Random(11)
    forever(conn, SERVER_SETTINGS, bytes(noise.getrandbits(8) for _octet in range(4096)))


def reset(conn, request):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


HOSTILE = [
    # name, handler, what the reason must say
    ("header flood (CONTINUATION, Huffman)", header_flood, "header block exceeds 16384 octets"),
    ("header flood (small CONTINUATIONs)", header_drip_flood, "header block exceeds 16384 octets"),
    ("HPACK dynamic-table bomb", hpack_bomb, "header list"),
    ("endless header blocks", many_header_blocks, "third header block"),
    ("endless DATA", endless_data, "body exceeds 256 KiB"),
    ("DATA on another stream", other_stream_data, "frames that do not advance the call (DATA x"),
    ("PING flood", ping_flood, "PING x"),
    ("SETTINGS flood", settings_flood, "(SETTINGS x"),
    ("WINDOW_UPDATE flood", window_update_flood, "WINDOW_UPDATE x100): a flood"),
    ("unknown frame types", unknown_frame_flood, "type 238 x100): a flood"),
    ("empty DATA frames", empty_data_flood, "(DATA x"),
    ("slow drip", slow_drip, "no complete answer within 0.5s: the peer sent"),
    ("headers, then silence", silent_after_settings, "no complete answer within 0.5s: the peer sent 68 octets in 2 frames (HEADERS x1, SETTINGS x1)"),
    ("graceful GOAWAY, then silence", graceful_goaway_then_silence, "(SETTINGS x1, GOAWAY x1)"),
    ("frame of 16 MiB announced", giant_frame, "DATA frame of 16777215 octets, above the 16384 allowed"),
    ("garbage", garbage, "not an HTTP/2 server preface"),
    ("garbage after SETTINGS", garbage_after_settings, ""),
    ("connection reset", reset, "without an HTTP/2 answer"),
]
