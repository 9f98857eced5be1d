# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.apiserver_proxy_check: how a probe report becomes warnings or a failure, and main() end to end
against loopback ports where nothing listens (the probe itself: module_utils/test_apiserver_proxy_probe.py)."""

from __future__ import annotations

import socket

import pytest
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import apiserver_proxy_check


def row(name, up, via_proxy=True, reason=None):
    return {"name": name, "address": "10.0.0.%s:5443" % name[-1], "up": up, "reason": reason, "via_proxy": via_proxy if up else False}


def report(rows, listening=True, forwarded=True, failures=()):
    return {"listener": "127.0.0.1:6443", "listening": listening, "forwarded": forwarded, "upstreams": rows,
            "up": [r["name"] for r in rows if r["up"]], "down": [r["name"] for r in rows if not r["up"]],
            "proxied_connections": 6, "proxied_failures": list(failures), "listen_error": None if listening else "connection refused"}


def test_all_up():
    assert apiserver_proxy_check.judge(report([row("cp1", True), row("cp2", True)]), False, "kube-apiserver-proxy") == (None, [])


def test_one_down_is_a_warning_naming_it():
    failure, warnings = apiserver_proxy_check.judge(report([row("cp1", True), row("cp2", False, reason="connection refused")]), True, "u")
    assert failure is None
    assert warnings == ["apiserver upstream cp2 (10.0.0.2:5443) does not answer from this node: connection refused"]


def test_none_up_warns_or_fails_in_strict_mode():
    rows = [row("cp1", False, reason="no answer within 2s"), row("cp2", False, reason="connection refused")]
    failure, warnings = apiserver_proxy_check.judge(report(rows, forwarded=False), False, "u")
    assert failure is None and "no apiserver upstream answers from this node (10.0.0.1:5443: no answer within 2s; " \
                               "10.0.0.2:5443: connection refused); the proxy listens on 127.0.0.1:6443" in warnings[-1]
    failure, _warnings = apiserver_proxy_check.judge(report(rows, forwarded=False), True, "u")
    assert failure.startswith("no apiserver upstream answers from this node")


def test_not_listening_fails_even_before_kubeadm():
    failure, _warnings = apiserver_proxy_check.judge(report([row("cp1", False, reason="refused")], listening=False), False, "kap")
    assert failure.startswith("nothing accepts connections on 127.0.0.1:6443 (connection refused)") and "journalctl -u kap" in failure


def test_proxy_that_does_not_forward_fails():
    failure, _warnings = apiserver_proxy_check.judge(report([row("cp1", True, via_proxy=False)], forwarded=False,
                                                            failures=["closed by the proxy"]), False, "u")
    assert failure.startswith("the proxy on 127.0.0.1:6443 accepted 6 connections but none reached an apiserver (closed by the proxy), "
                              "while cp1 answer(s) directly")


def test_up_but_not_seen_through_the_proxy_warns():
    _failure, warnings = apiserver_proxy_check.judge(report([row("cp1", True), row("cp2", True, via_proxy=False)]), False, "u")
    assert warnings == ["apiserver upstream cp2 (10.0.0.2:5443) answers directly but was not reached through 127.0.0.1:6443 in 6 "
                        "connections; the proxy may still hold it as failed (fail_timeout) or not list it"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_main_nothing_listens():
    kind, result = call_main(apiserver_proxy_check.main, {"upstreams": ["127.0.0.1:%d" % free_port()], "listen_port": free_port(),
                                                          "timeout": 0.5}, check_mode=True)
    assert kind is FailJson and result["msg"].startswith("nothing accepts connections on 127.0.0.1:") and result["listening"] is False


def test_main_none_up_not_strict():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        kind, result = call_main(apiserver_proxy_check.main, {"upstreams": ["127.0.0.1:%d" % free_port()],
                                                              "listen_port": listener.getsockname()[1], "timeout": 0.5})
    assert kind is ExitJson and result["changed"] is False and result["down"] == ["127.0.0.1"]
    assert any("no apiserver upstream answers" in warning for warning in result["warnings"])


@pytest.mark.parametrize("args, message", [
    ({"upstreams": []}, "upstreams: is empty"),
    ({"upstreams": ["10.0.0.1"], "timeout": 0}, "timeout: must be more than 0 seconds"),
    ({"upstreams": ["10.0.0.1"], "listen_address": "localhost"}, "listen_address: 'localhost' is not an IP address"),
])
def test_main_bad_input(args, message):
    kind, result = call_main(apiserver_proxy_check.main, args)
    assert kind is FailJson and result["msg"].startswith(message)
