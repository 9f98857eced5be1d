# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile and broken listeners against the CRI probe: every probe of one candidate ends within its timeout
(plus a margin for a loaded machine), with bounded memory, and its reason says what the peer did.

Each peer is probed through ``_cri_socket.probe_endpoint`` (every call the module makes for one candidate,
sharing one deadline), once timed and once under tracemalloc. The worst wall time and peak memory are
printed (``pytest -s``) and in the terminal summary.
"""

from __future__ import annotations

import socket
import time
import tracemalloc

import pytest
from figures import record
from grpc_peers import ScriptedPeer
from hostile_peers import HOSTILE
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs

TIMEOUT = 0.5
MARGIN = 1.0  # seconds of slack for a shared, loaded 2-core machine; the probe itself stops at TIMEOUT
MEMORY_LIMIT = 4 << 20
WORST = {"time": (0.0, ""), "memory": (0, "")}


@pytest.fixture
def hostile_peer(tmp_path):
    peers = []

    def make(handler, **kwargs):
        server = ScriptedPeer(tmp_path / ("hostile%d.sock" % len(peers)), handler, http2=False, **kwargs)
        peers.append(server)
        return server

    yield make
    for server in peers:
        server.close()


def probe_bounded(path, name):
    """Probe ``path`` as the module does; return the entry after checking time and memory."""
    started = time.monotonic()
    entry = cs.probe_endpoint("unix://" + path, path, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    tracemalloc.start()
    try:
        cs.probe_endpoint("unix://" + path, path, timeout=TIMEOUT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if elapsed > WORST["time"][0]:
        WORST["time"] = (elapsed, name)
    if peak > WORST["memory"][0]:
        WORST["memory"] = (peak, name)
    record("hostile CRI listeners (%d probed, timeout %.1f s)" % (len(HOSTILE) + 1, TIMEOUT),
           "worst wall time %.3f s (%s), worst peak memory %.1f KiB (%s)" % (
               WORST["time"][0], WORST["time"][1], WORST["memory"][0] / 1024.0, WORST["memory"][1]))
    print("%-40s %.3f s  %7.1f KiB  %s" % (name, elapsed, peak / 1024.0, entry["reason"][:150]))
    assert elapsed < TIMEOUT + MARGIN, (name, elapsed)
    assert peak < MEMORY_LIMIT, (name, peak)
    return entry


@pytest.mark.parametrize("name, handler, said", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_listener_is_cut_off_in_time(hostile_peer, name, handler, said):
    server = hostile_peer(handler)
    entry = probe_bounded(server.path, name)
    assert entry["cri"] in (None, False)
    assert entry["exists"] is True
    assert said in entry["reason"], entry["reason"]


def test_full_backlog_never_accepting(hostile_peer, tmp_path):
    server = hostile_peer(None, backlog=0, accept=False)
    waiting = []
    for _attempt in range(4):  # fill the queue of a listener that never accepts
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(server.path)
        except OSError:
            client.close()
            break
        waiting.append(client)
    try:
        entry = probe_bounded(server.path, "full backlog")
    finally:
        for client in waiting:
            client.close()
    assert (entry["cri"], entry["listening"]) == (None, False)
    assert "the listener's backlog is full (it accepts no connections); CRI capability undecided" in entry["reason"], entry["reason"]
