# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of kubeforge.cluster.cri_socket over generated candidates, preferences and timeouts.

Each example runs main() against a throwaway directory of sockets (a CRI peer, a gRPC server without the
CRI, a silent listener, a stale socket, a regular file) and checks:

* the module opens no file and connects only to normalised absolute paths under that directory;
* a failure names its option (or is a selection failure that lists the endpoints), never a playbook variable;
* a success selects one of the probed endpoints and says why;
* the whole run stays within the timeout plus a margin, however many candidates (they are probed at once).
"""

from __future__ import annotations

import os
import re
import socket
import time

from grpc_peers import ScriptedPeer, cri_version_message, grpc_router
from hypothesis import given
from hypothesis import strategies as st
from module_harness import ExitJson, FailJson, call_main
from properties import PROPERTY, Counter, any_value, audit, hostile_word, mostly, outside, throwaway_root
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
from ansible_collections.kubeforge.cluster.plugins.modules import cri_socket

SOCKETS = ["cri.sock", "nocri.sock", "silent.sock", "stale.sock", "file.sock", "missing.sock"]
OPTION_RE = re.compile(r"^(candidates|extra_candidates|preferred|preferred_runtime|timeout)(\[\d+\])?: "
                       r"|^argument '\w+' is of type|^value of preferred_runtime must be one of")
SELECTION_RE = re.compile(r"^(No CRI endpoint found|Found multiple|preferred=|preferred_runtime=)")


def spellings(directory):
    """A socket of the directory in one of the spellings a user may write."""
    return st.tuples(st.sampled_from(SOCKETS), st.sampled_from(["unix://{d}/{n}", "{d}/{n}", "unix://{d}//./{n}", "{d}/./{n}"])).map(
        lambda pair: pair[1].format(d=directory, n=pair[0]))


def test_cri_socket_selects_or_names_the_option(monkeypatch):
    counter = Counter("cri_socket: generated candidates, extra_candidates, preferred, preferred_runtime, probe, timeout")
    with throwaway_root("kf-prop-cri-") as base:
        peers = [ScriptedPeer(os.path.join(base, "cri.sock"), grpc_router({cs.CRI_V1_VERSION: (0, cri_version_message())})),
                 ScriptedPeer(os.path.join(base, "nocri.sock"), grpc_router({}))]
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(os.path.join(base, "silent.sock"))
        silent.listen(64)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(os.path.join(base, "stale.sock"))
        stale.close()
        with open(os.path.join(base, "file.sock"), "w") as handle:
            handle.write("not a socket\n")
        endpoint = spellings(base)
        endpoints = st.lists(mostly(endpoint, hostile_word, 8), max_size=4)

        @PROPERTY
        @given(candidates=mostly(endpoints, any_value, 8), extra=mostly(endpoints, any_value, 8),
               preferred=mostly(st.one_of(st.just(""), endpoint), st.one_of(hostile_word, st.sampled_from(list(cs.RUNTIME_NAMES)), any_value)),
               runtime=mostly(st.one_of(st.none(), st.sampled_from(list(cs.RUNTIME_NAMES))), any_value),
               probe=mostly(st.just(True), st.just(False)), timeout=mostly(st.sampled_from([0.1, 0.2]), any_value, 8))
        def prop(candidates, extra, preferred, runtime, probe, timeout):
            args = {"candidates": candidates, "extra_candidates": extra, "preferred": preferred, "probe": probe, "timeout": timeout}
            if runtime is not None:
                args["preferred_runtime"] = runtime
            started = time.monotonic()
            with audit() as events:
                kind, result = call_main(cri_socket.main, args)
            elapsed = time.monotonic() - started
            counter(kind is FailJson)
            assert outside(events, base) == [], outside(events, base)  # imports only, and connects under base
            for _event, path in (e for e in events if e[0] == "socket.connect"):
                assert path == os.path.normpath(path) and os.path.dirname(path) == base, path
            assert "kubeforge_cri_socket" not in repr(result)
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 0.2:
                assert elapsed < timeout + 1.5, (args, elapsed)
            if kind is FailJson:
                assert OPTION_RE.match(result["msg"]) or SELECTION_RE.match(result["msg"]), result["msg"]
                return
            assert kind is ExitJson and result["changed"] is False
            assert result["cri_socket"] in [e["endpoint"] for e in result["endpoints"]]
            assert result["selected_reason"]

        try:
            prop()
        finally:
            silent.close()
            for peer in peers:
                peer.close()
    counter.report()
