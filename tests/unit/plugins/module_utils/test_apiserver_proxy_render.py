# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy spec and the nginx / haproxy / systemd texts rendered from it (pure; the real binaries judge them in
tests/integration/test_apiserver_proxy_real.py)."""

from __future__ import annotations

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _apiserver_proxy_render as r
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

UPSTREAMS = [{"name": "cp1", "host": "10.0.0.11"}, {"name": "cp2", "host": "10.0.0.12"}, {"name": "cp3", "host": "10.0.0.13"}]


def spec(**overrides):
    params = {"upstreams": UPSTREAMS}
    params.update(overrides)
    return r.build_spec(params)


@pytest.mark.parametrize("value, milliseconds", [
    ("1s", 1000), ("500ms", 500), ("10m", 600000), ("1h", 3600000), ("2d", 172800000), (3, 3000), ("7", 7000), (" 2s ", 2000),
])
def test_parse_duration(value, milliseconds):
    assert r.parse_duration("connect_timeout", value) == milliseconds


@pytest.mark.parametrize("value, problem", [
    ("1.5s", "is not a duration"), ("1 s", "is not a duration"), ("10x", "is not a duration"), ("0s", "longer than 0"),
    (True, "got a bool"), ([1], "must be a string"), ("", "must not be empty"),
])
def test_parse_duration_refuses(value, problem):
    with pytest.raises(InputError, match=problem) as error:
        r.parse_duration("fail_timeout", value)
    assert error.value.option == "fail_timeout"


@pytest.mark.parametrize("milliseconds, text", [(1000, "1s"), (600000, "10m"), (1500, "1500ms"), (3600000, "1h"), (90000, "90s"),
                                                (86400000, "1d")])
def test_format_duration(milliseconds, text):
    assert r.format_duration(milliseconds) == text


@pytest.mark.parametrize("value, host, port, name, address", [
    ("10.0.0.11", "10.0.0.11", 5443, "10.0.0.11", "10.0.0.11:5443"),
    ("10.0.0.11:6443", "10.0.0.11", 6443, "10.0.0.11", "10.0.0.11:6443"),
    ("fd00::11", "fd00::11", 5443, "fd00::11", "[fd00::11]:5443"),
    ("[fd00:0::11]:7443", "fd00::11", 7443, "fd00::11", "[fd00::11]:7443"),
    ("cp1.example.internal", "cp1.example.internal", 5443, "cp1.example.internal", "cp1.example.internal:5443"),
    ({"host": "10.0.0.12", "name": "cp2"}, "10.0.0.12", 5443, "cp2", "10.0.0.12:5443"),
    ({"host": "[fd00::12]", "port": 9443}, "fd00::12", 9443, "fd00::12", "[fd00::12]:9443"),
])
def test_parse_upstream(value, host, port, name, address):
    upstream = r.parse_upstream("upstreams[0]", value, 5443)
    assert (upstream.host, upstream.port, upstream.name, upstream.address) == (host, port, name, address)


@pytest.mark.parametrize("value, problem", [
    ("cp 2!", "'cp 2!' is neither an IP address nor a DNS name"),
    ("10.0.0.11:5443:1", "is neither an IP address nor a DNS name"),
    ("10.0.0.11:99999", "port: must be at most 65535"),
    ("[cp1]:5443", "only IPv6 addresses go in brackets"),
    ("-oProxyCommand", "is neither an IP address nor a DNS name"),
    ({"port": 5443}, "has no host"),
    ({"host": "10.0.0.1", "weight": 2}, "unknown keys weight"),
    ({"host": "10.0.0.1", "port": "5443"}, "port: must be an integer, got a string"),
    ({"host": "a..b"}, "is neither an IP address nor a DNS name"),
    (["10.0.0.1"], "must be a string, got a list"),
    ("", "must not be empty"),
])
def test_parse_upstream_refuses(value, problem):
    with pytest.raises(InputError, match=problem):
        r.parse_upstream("upstreams[1]", value, 5443)


def test_build_spec_defaults():
    result = spec()
    assert (result.backend, result.listen, result.connect_timeout_ms, result.proxy_timeout_ms) == ("nginx", "127.0.0.1:6443", 1000, 600000)
    assert (result.max_fails, result.fail_timeout_ms, result.user, result.config_file) == (2, 10000, "www-data", "/etc/kube-apiserver-proxy/nginx.conf")
    assert spec(backend="haproxy").user == "haproxy"
    assert spec(backend="haproxy").config_file == "/etc/kube-apiserver-proxy/haproxy.cfg"
    assert spec(listen_address="[::]").listen == "[::]:6443"


@pytest.mark.parametrize("overrides, option, problem", [
    ({"upstreams": []}, "upstreams", "is empty"),
    ({"upstreams": "10.0.0.1"}, "upstreams", "must be a list"),
    ({"upstreams": ["10.0.0.1", "10.0.0.1:5443"]}, "upstreams[1]", "listed twice"),
    ({"listen_address": "localhost"}, "listen_address", "is not an IP address"),
    ({"listen_port": 0}, "listen_port", "at least 1"),
    ({"listen_address": "0.0.0.0", "listen_port": 5443}, "listen_port", "also the port of upstream 10.0.0.11:5443"),
    ({"listen_address": "10.0.0.12", "listen_port": 5443}, "listen_port", "also the port of upstream 10.0.0.12:5443"),
    ({"backend": "envoy"}, "backend", "must be one of nginx, haproxy"),
    ({"max_fails": True}, "max_fails", "must be an integer"),
    ({"user": "www data"}, "user", "must not contain whitespace"),
    ({"unit_name": "../x"}, "unit_name", "must not contain '/'"),
    ({"config_dir": "etc/x"}, "config_dir", "absolute path"),
    ({"access_log": "yes"}, "access_log", "true or false"),
])
def test_build_spec_refuses(overrides, option, problem):
    with pytest.raises(InputError, match=problem) as error:
        spec(**overrides)
    assert error.value.option == option


def test_node_local_listen_may_share_the_apiserver_port_elsewhere():
    # 127.0.0.1:5443 does not collide with apiservers bound on other addresses
    assert spec(listen_port=5443).listen == "127.0.0.1:5443"


def test_render_nginx():
    text = r.render_nginx(spec(connect_timeout="500ms", max_fails=3, fail_timeout="20s"), "/usr/lib/nginx/modules/ngx_stream_module.so")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0].startswith("# Managed by kubeforge.cluster.apiserver_proxy")
    assert "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" in lines
    assert "pid /run/kube-apiserver-proxy/nginx.pid;" in lines and "daemon off;" in lines
    assert "least_conn;" in lines
    assert [line for line in lines if line.startswith("server 10.")] == [
        "server 10.0.0.11:5443 max_fails=3 fail_timeout=20s;  # cp1",
        "server 10.0.0.12:5443 max_fails=3 fail_timeout=20s;  # cp2",
        "server 10.0.0.13:5443 max_fails=3 fail_timeout=20s;  # cp3",
    ]
    assert "listen 127.0.0.1:6443;" in lines
    assert "proxy_connect_timeout 500ms;" in lines and "proxy_timeout 10m;" in lines
    assert "proxy_next_upstream_tries 3;" in lines
    assert not any(line.startswith(("access_log", "log_format")) for line in lines)
    assert "load_module" not in r.render_nginx(spec(), None)


def test_render_nginx_access_log_and_ipv6_wildcard():
    text = r.render_nginx(spec(access_log=True, listen_address="::"), None)
    assert "listen [::]:6443 ipv6only=on;" in text
    assert "access_log syslog:server=unix:/dev/log,tag=kube_apiserver_proxy,nohostname kube_apiserver_proxy;" in text
    assert "log_format kube_apiserver_proxy " in text


def test_render_haproxy():
    text = r.render_haproxy(spec(backend="haproxy", upstreams=UPSTREAMS + ["[fd00::14]:5443", "cp5.example.internal"]))
    lines = [line.strip() for line in text.splitlines()]
    assert "balance leastconn" in lines and "option redispatch 1  # every retry of a failed connect goes to another apiserver" in lines
    assert "retries 5" in lines and "timeout connect 1s" in lines and "timeout client 10m" in lines and "timeout server 10m" in lines
    assert "bind 127.0.0.1:6443" in lines
    assert "default-server check check-ssl verify none inter 10s fall 2 rise 1 observe layer4 error-limit 2 on-error mark-down" in lines
    assert [line for line in lines if line.startswith("server ")] == [
        "server cp1 10.0.0.11:5443", "server cp2 10.0.0.12:5443", "server cp3 10.0.0.13:5443",
        "server fd00__14 [fd00::14]:5443", "server cp5.example.internal cp5.example.internal:5443",
    ]
    assert "option dontlog-normal" in lines and "option tcplog" not in lines
    assert "option tcplog" in r.render_haproxy(spec(backend="haproxy", access_log=True))
    assert "user haproxy" in lines and "group haproxy" in lines and "pidfile /run/kube-apiserver-proxy/haproxy.pid" in lines


def test_server_names_are_unique():
    upstreams = [r.parse_upstream("u", {"host": host, "name": "cp 1"}, 5443) for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3")]
    assert r.server_names(upstreams) == ["cp_1", "cp_1_2", "cp_1_3"]


@pytest.mark.parametrize("backend, binary, reload_signal", [("nginx", "/usr/sbin/nginx", "HUP"), ("haproxy", "/usr/sbin/haproxy", "USR2")])
def test_render_unit(backend, binary, reload_signal):
    text = r.render_unit(spec(backend=backend), binary)
    lines = text.splitlines()
    assert "Before=kubelet.service" in lines and "WantedBy=multi-user.target" in lines
    assert "ExecReload=/bin/kill -s %s $MAINPID" % reload_signal in lines
    assert "RuntimeDirectory=kube-apiserver-proxy" in lines and "Restart=always" in lines
    config = "/etc/kube-apiserver-proxy/%s" % r.CONFIG_NAME[backend]
    assert any(line.startswith("ExecStartPre=%s " % binary) and line.endswith(config) for line in lines)
    if backend == "haproxy":
        assert "Type=notify" in lines and "ExecStart=%s -Ws -f %s -p /run/kube-apiserver-proxy/haproxy.pid" % (binary, config) in lines
    else:
        assert "Type=exec" in lines and "ExecStart=%s -e stderr -c %s" % (binary, config) in lines


def test_config_data_ignores_comments_and_spacing():
    text = r.render_nginx(spec(), None)
    edited = text.replace("# Managed by", "# Formerly managed by").replace("    least_conn;", "least_conn;   # balance")
    assert r.config_data(edited) == r.config_data(text)
    assert r.config_data(text.replace("10.0.0.13", "10.0.0.14")) != r.config_data(text)
    # a '#' inside a value is data, not a comment
    assert r.config_data("http-check expect rstatus ^(2#0)$\n") == ["http-check expect rstatus ^(2#0)$"]
    assert r.config_data(None) is None


def test_listen_of():
    assert r.listen_of(r.render_nginx(spec(listen_address="::"), None)) == "[::]:6443"
    assert r.listen_of(r.render_haproxy(spec(backend="haproxy", listen_port=7443))) == "127.0.0.1:7443"
    assert r.listen_of(None) is None
