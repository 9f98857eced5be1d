# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe and selection logic without daemons: scripted gRPC peers on temporary sockets, plain sockets,
stale socket files, and hand-built endpoint tables for selection."""

from __future__ import annotations

import os
import socket

import pytest
from grpc_peers import ScriptedPeer, cri_version_message, grpc_router
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as g


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
    ((crictl, flag, endpoint, timeout_flag, budget, verb),) = calls
    assert (crictl, flag, endpoint, timeout_flag, verb) == ("/usr/bin/crictl", "--runtime-endpoint", server.endpoint, "--timeout", "version")
    assert budget.endswith("ms") and 1000 < int(budget[:-2]) <= 2000  # what is left of the candidate's 2 s
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
    endpoints, selected, reason = cs.detect(candidates)
    assert selected == "unix://" + str(tmp_path / "run" / "cri.sock")
    assert reason == "the only CRI endpoint on this node (1 socket checked)"
    assert endpoints[1]["alias_of"] == selected and endpoints[1]["cri"] is True
    assert endpoints[1]["path"] == str(tmp_path / "varrun" / "cri.sock")
    # the second spelling may be preferred explicitly
    assert cs.detect(candidates, preferred=candidates[1])[1:] == (candidates[1], "preferred endpoint; it answers the CRI (containerd 1.7.24)")


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
    assert cs.normalize_endpoint("candidates[0]", value) == expected


@pytest.mark.parametrize("candidates, extra, preferred, runtime, message", [
    (["tcp://127.0.0.1:1234"], [], "", None, "candidates[0]: 'tcp://127.0.0.1:1234' is not a unix socket endpoint"),
    ([], ["/a.sock", "unix://run/x.sock"], "", None, "extra_candidates[1]: 'unix://run/x.sock': the socket path must be absolute"),
    ([], ["/run/../etc/x.sock"], "", None, "extra_candidates[0]: must not contain '..' components"),
    ([["/a.sock"]], [], "", None, "candidates[0]: must be a string, got a list"),
    (["/run/x.sock"], [], "containerd", None, "preferred: 'containerd' is a runtime name, not an endpoint: give it as preferred_runtime"),
    (["/run/x.sock"], [], "docker", None, "preferred: 'docker' is not a unix socket endpoint"),
    (["/run/x.sock"], [], "", "docker", "preferred_runtime: must be one of containerd, crio, cri-dockerd, got 'docker'"),
    ([], [], "", None, "candidates: candidates and extra_candidates are both empty"),
    (["/s%d.sock" % i for i in range(65)], [], "", None, "candidates: 65 distinct endpoints with extra_candidates and preferred; at most 64"),
])
def test_bad_options_name_the_option(candidates, extra, preferred, runtime, message):
    with pytest.raises(cs.InputError) as caught:
        cs.detect(candidates, extra, preferred, runtime)
    assert str(caught.value).startswith(message)


def test_preferred_runtime_needs_a_probe():
    with pytest.raises(cs.InputError, match="^preferred_runtime: needs probe=true"):
        cs.detect(["/run/x.sock"], preferred_runtime="crio", probe=False)


def test_build_candidates_adds_extra_and_preferred_once():
    pairs = cs.build_candidates(["/a.sock", "unix:///a.sock"], ["/b.sock"], "/c.sock")
    assert [u for u, dummy in pairs] == ["unix:///a.sock", "unix:///b.sock", "unix:///c.sock"]
    assert [u for u, dummy in cs.build_candidates(["/a.sock"], [], "")] == ["unix:///a.sock"]


def test_candidates_are_probed_at_the_same_time(tmp_path):
    """50 listeners that never answer cost one timeout, not fifty."""
    import time

    listeners = []
    for index in range(50):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(tmp_path / ("silent%d.sock" % index)))
        sock.listen(1)
        listeners.append(sock)
    try:
        started = time.monotonic()
        with pytest.raises(cs.CriSocketError) as caught:
            cs.detect([s.getsockname() for s in listeners], timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        for sock in listeners:
            sock.close()
    assert len(caught.value.endpoints) == 50
    assert all("no complete answer within 0.5s: the peer accepted the connection but sent nothing" in e["reason"]
               for e in caught.value.endpoints)
    assert elapsed < 0.5 * 50 / 4, elapsed  # sequential probing would take 25 s; a loaded 2-core machine gets slack
    print("50 silent candidates probed in %.2f s (timeout 0.5 s each)" % elapsed)


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


@pytest.mark.parametrize("endpoints, preferred, runtime, expected, reason", [
    ([CTRD, CTRD_ALIAS, STALE, MISSING], "", None, CTRD["endpoint"], "the only CRI endpoint on this node (3 sockets checked)"),
    ([CTRD_NOCRI, DOCKERD], "", None, DOCKERD["endpoint"], "the only CRI endpoint on this node (2 sockets checked)"),  # seed 001
    ([CTRD, DOCKERD], "", "cri-dockerd", DOCKERD["endpoint"], "the only CRI endpoint of preferred_runtime=cri-dockerd (cri-dockerd 28.5.2)"),
    ([CTRD, DOCKERD], "", "containerd", CTRD["endpoint"], "the only CRI endpoint of preferred_runtime=containerd (containerd 1.7.24)"),
    ([CTRD, CTRD_ALIAS, DOCKERD], CTRD_ALIAS["endpoint"], None, CTRD_ALIAS["endpoint"], "preferred endpoint; it answers the CRI (containerd 1.7.24)"),
    ([CTRD, DOCKERD, CRIO], "/run/crio/crio.sock", None, CRIO["endpoint"], "preferred endpoint; it answers the CRI (crio 1.31.2)"),
    ([CTRD, DOCKERD, CRIO], "/run/crio/crio.sock", "crio", CRIO["endpoint"], "preferred endpoint; it answers the CRI (crio 1.31.2)"),
])
def test_select(endpoints, preferred, runtime, expected, reason):
    assert cs.select(endpoints, preferred, runtime) == (expected, reason)


def test_select_ambiguous_names_each_runtime_and_the_options():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD, CTRD_ALIAS, DOCKERD])
    assert str(exc.value) == (
        "Found multiple CRI endpoints on this node: unix:///run/containerd/containerd.sock (containerd 1.7.24), "
        "unix:///run/cri-dockerd.sock (cri-dockerd 28.5.2). kubeadm, kubelet and crictl need exactly one: set the option "
        "preferred to one of these endpoints, or preferred_runtime to the runtime to use (containerd, crio, cri-dockerd).")
    assert exc.value.endpoints[0] is CTRD


def test_select_preferred_endpoint_of_another_runtime():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD, DOCKERD], DOCKERD["endpoint"], "containerd")
    assert str(exc.value) == ("preferred=unix:///run/cri-dockerd.sock is served by cri-dockerd, but preferred_runtime is "
                              "containerd: make them agree, or leave one of them empty")


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
        "preferred=unix:///run/containerd/containerd.sock is not a usable CRI endpoint: containerd 1.6.20 answers its own "
        "API but not the CRI. CRI endpoints on this node: unix:///run/cri-dockerd.sock (cri-dockerd 28.5.2). Set preferred "
        "to one of them, or leave it empty to detect.")


def test_select_preferred_not_cri_and_nothing_else():
    with pytest.raises(cs.CriSocketError, match="^preferred=unix:///run/crio/crio.sock .*stale socket file. No CRI endpoint found"):
        cs.select([STALE, MISSING], "unix:///run/crio/crio.sock")


def test_select_preferred_endpoint_not_among_entries():
    with pytest.raises(cs.CriSocketError, match="is not a usable CRI endpoint: not probed"):
        cs.select([CTRD], "/run/other.sock")


def test_select_preferred_runtime_missing():
    with pytest.raises(cs.CriSocketError) as exc:
        cs.select([CTRD, MISSING], "", "crio")
    assert str(exc.value) == (
        "preferred_runtime=crio: no CRI endpoint of that runtime on this node. CRI endpoints found: "
        "unix:///run/containerd/containerd.sock (containerd 1.7.24). Set preferred_runtime to the runtime of one of them, "
        "or install and start crio.")
    with pytest.raises(cs.CriSocketError, match="^preferred_runtime=crio: No CRI endpoint found on this node"):
        cs.select([MISSING], "", "crio")


def test_select_preferred_runtime_ambiguous():
    second = _entry("unix:///srv/containerd.sock", True, "containerd", "2.1.9")
    with pytest.raises(cs.CriSocketError, match="^preferred_runtime=containerd matches several CRI endpoints: .*containerd 1.7.24.*"
                                                "containerd 2.1.9.*Set preferred to one of these endpoints.$"):
        cs.select([CTRD, second], "", "containerd")


def test_select_without_probe_counts_listening_sockets():
    listening = _entry("unix:///run/containerd/containerd.sock", None, listening=True)
    other = _entry("unix:///run/cri-dockerd.sock", None, listening=True)
    assert cs.select([listening, MISSING], probe=False) == (listening["endpoint"], "the only listening socket (probe=false, 2 checked)")
    with pytest.raises(cs.CriSocketError, match="^Found multiple listening sockets \\(probe=false\\) on this node"):
        cs.select([listening, other], probe=False)


def test_messages_never_name_a_playbook_variable():
    import inspect

    assert "kubeforge_cri_socket" not in inspect.getsource(cs)


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
