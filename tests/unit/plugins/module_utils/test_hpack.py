# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HPACK (RFC 7541): the decoder against the RFC's vectors and a block captured from containerd, and its bounds."""

from __future__ import annotations

import pytest
from grpc_peers import huffman_encode, huffman_literal
from ansible_collections.kubeforge.cluster.plugins.module_utils import _hpack as h

# RFC 7541 Appendix C.4: three requests on one connection, Huffman strings, dynamic table.
RFC_C4 = [
    ("828684418cf1e3c2e5f23a6ba0ab90f4ff",
     [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")], 57),
    ("828684be5886a8eb10649cbf",
     [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
      ("cache-control", "no-cache")], 110),
    ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
     [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"),
      ("custom-key", "custom-value")], 164),
]

# Trailers-only answer captured from containerd 1.6.20 with disabled_plugins = ["io.containerd.grpc.v1.cri"]
# for /runtime.v1.RuntimeService/Version: indexed, incremental-indexing and Huffman fields.
CONTAINERD_UNIMPLEMENTED = (
    "885f8b1d75d0620d263d4c4d656440889acac8b21234da8f02313240899acac8b5254207317f9eb6aeb51fc54a20b677"
    "310aa596d4935255fb857db6d493525dc5b3b9885f"
)


def test_static_table_matches_rfc_appendix_a():
    assert len(h.HPACK_STATIC_TABLE) == 61
    assert h.HPACK_STATIC_TABLE[0] == (":authority", "")
    assert h.HPACK_STATIC_TABLE[7] == (":status", "200")
    assert h.HPACK_STATIC_TABLE[30] == ("content-type", "")
    assert h.HPACK_STATIC_TABLE[60] == ("www-authenticate", "")


def test_rfc_c4_requests_decode_with_shared_dynamic_table():
    decoder = h.HpackDecoder()
    for block, headers, table_size in RFC_C4:
        assert decoder.decode(bytes.fromhex(block)) == headers
        assert decoder.size == table_size
    assert [name for name, dummy in decoder.dynamic] == [b"custom-key", b"cache-control", b":authority"]


@pytest.mark.parametrize("text, coded", [
    (b"www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),  # RFC 7541 C.4.1
    (b"no-cache", "a8eb10649cbf"),  # C.4.2
    (b"custom-key", "25a849e95ba97d7f"),  # C.4.3
    (b"302", "6402"),  # C.6.1
    (b"private", "aec3771a4b"),  # C.6.1
])
def test_huffman_rfc_vectors(text, coded):
    assert huffman_encode(text) == bytes.fromhex(coded)
    assert h.huffman_decode(bytes.fromhex(coded)) == text


def test_huffman_round_trips_every_octet():
    data = bytes(range(256)) * 2
    assert h.huffman_decode(huffman_encode(data)) == data


def test_huffman_code_is_a_complete_prefix_code():
    # Kraft equality: a canonical Huffman code over 257 symbols uses the whole code space.
    assert sum(2 ** (30 - n) for n in h.HUFFMAN_CODE_LENGTHS) == 2 ** 30
    assert min(h.HUFFMAN_CODE_LENGTHS) == 5 and max(h.HUFFMAN_CODE_LENGTHS) == 30


@pytest.mark.parametrize("coded, error", [
    ("f1e3c2e5f23a6ba0ab90f4", "padding"),  # last code cut: padding is not all ones
    ("f1e3c2e5f23a6ba0ab90f4ff" + "ff", "padding"),  # a whole octet of padding
    ("fffffffc", "EOS"),  # the 30-bit EOS symbol itself
])
def test_huffman_rejects_bad_input(coded, error):
    with pytest.raises(h.HpackError, match=error):
        h.huffman_decode(bytes.fromhex(coded))


@pytest.mark.parametrize("value, prefix, encoded", [
    (10, 5, "0a"),  # RFC 7541 C.1.1
    (1337, 5, "1f9a0a"),  # C.1.2
    (42, 8, "2a"),  # C.1.3
    (127, 7, "7f00"),
])
def test_hpack_integers(value, prefix, encoded):
    assert h.hpack_encode_integer(value, prefix) == bytes.fromhex(encoded)
    assert h.hpack_decode_integer(bytearray.fromhex(encoded), 0, prefix) == (value, len(encoded) // 2)


def test_containerd_trailers_only_block():
    headers = h.HpackDecoder().decode(bytes.fromhex(CONTAINERD_UNIMPLEMENTED))
    assert headers == [
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "12"),
        ("grpc-message", "unknown service runtime.v1.RuntimeService"),
    ]


def test_dynamic_table_size_update_evicts_oldest():
    decoder = h.HpackDecoder()
    # size update to 100 octets (001 11111 + 69), then three literal-with-indexing fields of 34 octets
    block = bytes.fromhex("3f45") + b"".join(b"\x40\x01" + n + b"\x01" + v for n, v in ((b"a", b"1"), (b"b", b"2"), (b"c", b"3")))
    assert decoder.decode(block) == [("a", "1"), ("b", "2"), ("c", "3")]
    assert decoder.size == 68
    assert decoder.decode(bytes.fromhex("be bf".replace(" ", ""))) == [("c", "3"), ("b", "2")]
    with pytest.raises(h.HpackError, match="beyond the dynamic table"):
        decoder.decode(bytes.fromhex("c0"))  # index 64: "a" was evicted


def test_size_update_above_settings_limit_is_rejected():
    with pytest.raises(h.HpackError, match="above the limit"):
        h.HpackDecoder(max_table_size=4096).decode(h.hpack_encode_integer(8192, 5, 0x20))


def test_literals_never_indexed_and_with_indexed_name():
    decoder = h.HpackDecoder()
    block = b"\x10\x04name\x05value" + b"\x0f\x10\x10application/grpc"  # never indexed; index 31 without indexing
    assert decoder.decode(block) == [("name", "value"), ("content-type", "application/grpc")]
    assert decoder.dynamic == []


def test_truncated_block_is_an_error():
    with pytest.raises(h.HpackError, match="truncated"):
        h.HpackDecoder().decode(b"\x00\x05ab")


def test_encoded_request_headers_round_trip():
    headers = [(":method", "POST"), (":path", "/runtime.v1.RuntimeService/Version"), ("te", "trailers")]
    assert h.HpackDecoder().decode(h.encode_headers(headers)) == headers
    huff = huffman_literal("grpc-message", "unknown service x")
    assert h.HpackDecoder().decode(huff) == [("grpc-message", "unknown service x")]


def test_header_list_limit_counts_rfc_sizes():
    indexed = bytes([0x80 | 8]) * 200  # ":status: 200" from the static table, 200 times: 42 octets each
    with pytest.raises(h.HpackError, match="the header list exceeds 4096 octets \\(RFC 7541 sizes\\) after 98 fields"):
        h.HpackDecoder(max_list_size=4096).decode(indexed)
    block = h.encode_headers([("x-%d" % i, "v" * 100) for i in range(200)])
    with pytest.raises(h.HpackError, match="a header string of 100 octets would take the header list past 4096 octets"):
        h.HpackDecoder(max_list_size=4096).decode(block)
    huge = h.hpack_encode_literal("a", "b" * 9000)
    with pytest.raises(h.HpackError, match="a header string of 9000 octets would take the header list past 4096 octets"):
        h.HpackDecoder(max_list_size=4096).decode(huge)


class _Expired:
    @staticmethod
    def expired():
        return True


def test_decoding_stops_at_the_deadline():
    with pytest.raises(h.HpackError, match="time ran out while decoding a header block of"):
        h.HpackDecoder().decode(h.encode_headers([("a", "b")]), deadline=_Expired())
