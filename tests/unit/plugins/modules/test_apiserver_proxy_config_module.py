# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.apiserver_proxy_config main(): check mode -> apply -> re-apply -> upstream change (reload) ->
backend switch (restart) -> refusals that write nothing. Files are real (a temp dir); the node's commands come from
a scripted NodeOps (the real binaries judge the same code in tests/integration/test_apiserver_proxy_real.py)."""

from __future__ import annotations

import ipaddress
import os

import pytest
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_node import NodeOps, ProxyError
from ansible_collections.kubeforge.cluster.plugins.modules import apiserver_proxy_config

NGINX_V = "nginx version: nginx/1.22.1\nconfigure arguments: --modules-path=/usr/lib/nginx/modules --with-stream=dynamic\n"


class ScriptedNode(NodeOps):
    """The node as a test describes it; files go through the real NodeOps.replace (``_files.replace_file``)."""

    def __init__(self, module, state):
        super().__init__(module, proc_root="/nonexistent")
        self.state = state

    def find_binary(self, name):
        return self.state["binaries"].get(name)

    def nginx_version(self, binary):
        return self.state["nginx_v"]

    def exists(self, path):
        return path in self.state["files"] or os.path.exists(path)

    def validate(self, backend, binary, text):
        self.state["validated"].append((backend, text))
        if self.state["refuse"]:
            raise ProxyError("%s refuses the new configuration: %s" % (backend, self.state["refuse"]), rc=1, stderr=self.state["refuse"])
        return ""

    def service(self, unit):
        return dict(self.state["service"])

    def daemon_reload(self):
        self.state["daemon_reloads"] += 1

    def port_users(self, address, port, unit):
        return self.state["foreign"], self.state["ours"]

    def probe_bind(self, address, port):
        self.state["probed"].append((address, port))
        return self.state["bind_error"]

    def all_port_users(self, port):
        return self.state["foreign_any"]

    def binary_replaced(self, pid, binary, libraries=()):
        return self.state["replaced"]


@pytest.fixture
def node(tmp_path, monkeypatch):
    state = {
        "binaries": {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy"},
        "nginx_v": NGINX_V,
        "files": {"/usr/lib/nginx/modules/ngx_stream_module.so"},
        "validated": [], "refuse": None, "daemon_reloads": 0, "probed": [], "bind_error": None,
        "service": {"active": False, "main_pid": 0, "loaded": False},
        "foreign": [], "ours": [], "foreign_any": [], "replaced": None,
        "dir": tmp_path,
    }
    monkeypatch.setattr(apiserver_proxy_config, "make_ops", lambda module: ScriptedNode(module, state))
    return state


def args(node, **overrides):
    base = {
        "upstreams": [{"name": "cp1", "host": "10.0.0.11"}, {"name": "cp2", "host": "10.0.0.12"}],
        "config_dir": str(node["dir"] / "etc"),
        "unit_dir": str(node["dir"] / "systemd"),
    }
    base.update(overrides)
    return base


def run(node, check_mode=False, diff=False, **overrides):
    return call_main(apiserver_proxy_config.main, args(node, **overrides), check_mode=check_mode, diff=diff)


def run_ok(node, **kwargs):
    kind, result = run(node, **kwargs)
    assert kind is ExitJson, result
    return result


def running(node):
    node["service"] = {"active": True, "main_pid": 4242, "loaded": True}
    node["ours"] = [ipaddress.ip_address("127.0.0.1")]


def files(node):
    return sorted(path.name for path in (node["dir"] / "etc").iterdir()) if (node["dir"] / "etc").exists() else []


def test_check_apply_reapply(node):
    result = run_ok(node, check_mode=True, diff=True)
    assert result["changed"] and result["action"] == "start" and result["unit_created"]
    assert result["validated"] and files(node) == []
    assert [d["after_header"] for d in result["diff"]] == [str(node["dir"] / "etc" / "nginx.conf"),
                                                           str(node["dir"] / "systemd" / "kube-apiserver-proxy.service")]
    assert "server 10.0.0.11:5443 max_fails=2 fail_timeout=10s;  # cp1" in result["diff"][0]["after"]
    assert node["daemon_reloads"] == 0 and node["probed"] == [("127.0.0.1", 6443)]

    result = run_ok(node)
    assert result["changed"] and result["config_changed"] and result["unit_changed"] and result["action"] == "start"
    assert files(node) == ["nginx.conf"] and result.get("backup_file") is None
    config = (node["dir"] / "etc" / "nginx.conf").read_text()
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in config
    unit = (node["dir"] / "systemd" / "kube-apiserver-proxy.service").read_text()
    assert "ExecStart=/usr/sbin/nginx -e stderr -c %s/etc/nginx.conf" % node["dir"] in unit
    assert node["daemon_reloads"] == 1

    running(node)
    validated = len(node["validated"])
    result = run_ok(node, diff=True)
    assert not result["changed"] and result["action"] == "none" and "diff" not in result
    assert len(node["validated"]) == validated, "an unchanged config is not validated again"
    assert node["probed"] == [("127.0.0.1", 6443)] * 2, "the proxy's own listener is not probed"


def test_upstream_change_reloads_with_backup(node):
    run_ok(node)
    running(node)
    upstreams = [{"name": "cp1", "host": "10.0.0.11"}, {"name": "cp2", "host": "10.0.0.12"}, {"name": "cp4", "host": "10.0.0.14"}]
    result = run_ok(node, check_mode=True, diff=True, upstreams=upstreams)
    assert result["changed"] and result["action"] == "reload" and not result["unit_changed"]
    assert "10.0.0.14" not in (node["dir"] / "etc" / "nginx.conf").read_text()
    result = run_ok(node, upstreams=upstreams)
    assert result["action"] == "reload" and result["reasons"] == ["the configuration changes; the master keeps running and new workers take it"]
    assert "server 10.0.0.14:5443" in (node["dir"] / "etc" / "nginx.conf").read_text()
    assert os.path.exists(result["backup_file"]) and "10.0.0.14" not in open(result["backup_file"]).read()
    assert node["daemon_reloads"] == 1


def test_comment_edits_are_not_a_change(node):
    run_ok(node)
    running(node)
    path = node["dir"] / "etc" / "nginx.conf"
    path.write_text(path.read_text().replace("# Managed by", "# (edited) Managed by"))
    assert run_ok(node)["changed"] is False


def test_backend_switch_restarts_and_removes_the_other_config(node):
    run_ok(node)
    running(node)
    result = run_ok(node, backend="haproxy", diff=True)
    assert result["action"] == "restart" and result["unit_changed"] and result["removed"] == [str(node["dir"] / "etc" / "nginx.conf")]
    assert files(node) == ["haproxy.cfg"]
    assert [d["after"] for d in result["diff"]][-1] == ""
    assert "ExecStart=/usr/sbin/haproxy -Ws -f" in (node["dir"] / "systemd" / "kube-apiserver-proxy.service").read_text()


@pytest.mark.parametrize("change, reason", [
    ({"listen_port": 7443}, "the listen address changes from 127.0.0.1:6443 to 127.0.0.1:7443"),
    ({"replaced": "the running nginx was replaced on disk (/usr/sbin/nginx (deleted)), e.g. by a package upgrade"}, "replaced on disk"),
])
def test_restart_reasons(node, change, reason):
    run_ok(node)
    running(node)
    node["replaced"] = change.pop("replaced", None)
    result = run_ok(node, **change)
    assert result["action"] == "restart" and any(reason in text for text in result["reasons"]), result["reasons"]


def test_widening_the_listen_address_is_not_a_conflict_with_itself(node):
    run_ok(node)
    running(node)  # the proxy holds 127.0.0.1:6443; binding 0.0.0.0:6443 beside it would fail, a restart frees it
    node["bind_error"] = "address already in use"
    result = run_ok(node, listen_address="0.0.0.0")
    assert result["action"] == "restart" and node["probed"] == [("127.0.0.1", 6443)]


def test_port_held_by_another_process_writes_nothing(node):
    node["foreign"] = [{"pid": 77, "name": "python3", "cmdline": "python3 -m http.server 6443", "unit": "squat.service",
                        "address": "127.0.0.1:6443"}]
    kind, result = run(node)
    assert kind is FailJson
    assert result["msg"].startswith("cannot listen on 127.0.0.1:6443: 127.0.0.1:6443 is held by python3 (pid 77, squat.service): "
                                    "python3 -m http.server 6443; stop that process or choose another listen_port")
    assert files(node) == [] and node["validated"] == []


def test_kernel_refusal_names_every_holder(node):
    node["bind_error"] = "address already in use"
    node["foreign_any"] = [{"pid": 9, "name": "socat", "cmdline": "socat TCP6-LISTEN:6443 -", "unit": "", "address": "[::]:6443"}]
    kind, result = run(node)
    assert kind is FailJson and "address already in use ([::]:6443 is held by socat (pid 9): socat TCP6-LISTEN:6443 -)" in result["msg"]
    assert files(node) == []


def test_refused_candidate_keeps_the_live_config(node):
    run_ok(node)
    running(node)
    before = (node["dir"] / "etc" / "nginx.conf").read_text()
    node["refuse"] = 'host not found in upstream "cp9.invalid:5443"'
    kind, result = run(node, upstreams=["10.0.0.11", "cp9.invalid"])
    assert kind is FailJson and "nginx refuses the new configuration" in result["msg"] and result["rc"] == 1
    assert (node["dir"] / "etc" / "nginx.conf").read_text() == before and files(node) == ["nginx.conf"]


def test_missing_binary(node):
    node["binaries"] = {}
    kind, result = run(node)
    assert kind is FailJson and result["msg"] == ("nginx is not installed (no nginx in PATH, /usr/sbin or /usr/local/sbin); "
                                                  "install nginx and libnginx-mod-stream (Debian) first")
    result = run_ok(node, check_mode=True)
    assert result["changed"] and not result["validated"]
    assert result["warnings"] == ["nginx is not installed yet; check mode cannot validate the configuration with it"]


def test_nginx_without_stream_module(node):
    node["nginx_v"] = "configure arguments: --with-http_ssl_module"
    kind, result = run(node)
    assert kind is FailJson and "built without the stream (TCP proxy) module" in result["msg"]
    node["nginx_v"] = NGINX_V
    node["files"] = set()
    kind, result = run(node)
    assert kind is FailJson and "install libnginx-mod-stream" in result["msg"]


@pytest.mark.parametrize("overrides, message", [
    ({"upstreams": []}, "upstreams: is empty"),
    ({"upstreams": ["cp 1"]}, "upstreams[0]: 'cp 1' is neither an IP address nor a DNS name"),
    ({"connect_timeout": "fast"}, "connect_timeout: 'fast' is not a duration"),
])
def test_bad_input(node, overrides, message):
    kind, result = run(node, **overrides)
    assert kind is FailJson and result["msg"].startswith(message)
    assert files(node) == []


def test_symlinked_config_is_replaced_through_the_link(node):
    target = node["dir"] / "real.conf"
    target.write_text("# placeholder\n")
    (node["dir"] / "etc").mkdir()
    os.symlink(target, node["dir"] / "etc" / "nginx.conf")
    run_ok(node)
    assert os.path.islink(node["dir"] / "etc" / "nginx.conf") and "least_conn;" in target.read_text()
