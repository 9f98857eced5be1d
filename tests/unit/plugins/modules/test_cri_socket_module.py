# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cri_socket module's argument handling, results and failures (no daemons: temp sockets)."""

from __future__ import annotations

import socket

import pytest
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import cri_socket


def run(args, expect=ExitJson):
    kind, result = call_main(cri_socket.main, args)
    assert kind is expect, result
    return result


@pytest.fixture
def listening(tmp_path):
    """A unix socket that accepts connections (the kernel queues them; nobody answers)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "listening.sock"))
    sock.listen(8)
    yield "unix://%s" % (tmp_path / "listening.sock")
    sock.close()


@pytest.fixture
def stale(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "stale.sock"))
    sock.close()
    return "unix://%s" % (tmp_path / "stale.sock")


def test_defaults_are_kubeadms_sockets():
    spec = cri_socket.argument_spec()
    assert "unix:///var/run/cri-dockerd.sock" in spec["candidates"]["default"]
    assert "unix:///run/containerd/containerd.sock" in spec["candidates"]["default"]
    assert spec["probe"]["default"] is True


def test_no_endpoint_fails_with_endpoints(tmp_path, stale):
    result = run({"candidates": [stale, str(tmp_path / "none.sock")]}, FailJson)
    assert result["msg"].startswith("No CRI endpoint found on this node. Checked: %s: stale socket file" % stale)
    assert "kubeforge.cluster.containerd" in result["msg"] and "kubeforge.cluster.cri_dockerd" in result["msg"]
    assert [e["listening"] for e in result["endpoints"]] == [False, False]
    assert [e["exists"] for e in result["endpoints"]] == [True, False]


def test_probe_false_selects_the_listening_socket_in_check_mode(listening, stale):
    result = run({"candidates": [stale], "extra_candidates": [listening], "probe": False, "_ansible_check_mode": True})
    assert result["changed"] is False
    assert result["cri_socket"] == listening
    assert result["endpoints"][1]["cri"] is None and result["endpoints"][1]["listening"] is True


def test_silent_listener_is_undecided_within_the_timeout(listening):
    result = run({"candidates": [listening], "timeout": 0.2}, FailJson)
    entry = result["endpoints"][0]
    assert entry["cri"] is None and entry["listening"] is True
    assert "no complete answer within 0.2s" in entry["reason"] and entry["reason"].endswith("CRI capability undecided")


@pytest.mark.parametrize("args, msg", [
    ({"candidates": ["tcp://10.0.0.1:2376"]}, "candidates[0]: 'tcp://10.0.0.1:2376' is not a unix socket endpoint"),
    ({"preferred": "dockershim"}, "preferred: 'dockershim' is not a unix socket endpoint"),
    ({"preferred": "cri-dockerd"}, "preferred: 'cri-dockerd' is a runtime name, not an endpoint: give it as preferred_runtime"),
    ({"preferred_runtime": "docker"}, "value of preferred_runtime must be one of: containerd, crio, cri-dockerd, got: docker"),
    ({"timeout": 0}, "timeout: must be at least 0.01, got 0.0 seconds"),
    ({"timeout": 600}, "timeout: must be at most 60.0, got 600.0 seconds"),
])
def test_bad_arguments(args, msg):
    assert run(args, FailJson)["msg"].startswith(msg)


def test_empty_preferred_is_no_preference(listening):
    for preferred in ("", "  "):
        result = run({"candidates": [listening], "probe": False, "preferred": preferred})
        assert result["cri_socket"] == listening
        assert result["selected_reason"] == "the only listening socket (probe=false, 1 checked)"


def test_preferred_outside_the_candidates_is_checked(listening, stale):
    result = run({"candidates": [stale], "probe": False, "preferred": listening})
    assert result["cri_socket"] == listening
    assert result["selected_reason"] == "preferred endpoint; it accepts connections (probe=false)"
    assert [e["endpoint"] for e in result["endpoints"]] == [stale, listening]
