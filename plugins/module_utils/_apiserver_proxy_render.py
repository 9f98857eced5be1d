# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-local apiserver proxy as data: input checks and the nginx / haproxy / systemd texts rendered from it.

Pure functions (stdlib + ``_validate``), used by ``kubeforge.cluster.apiserver_proxy_config`` on the node, by its
unit tests and by the latency benchmark. Both backends get the same behaviour from the same spec: least
connections, a connect timeout, an idle (proxy) timeout, passive health checks (``max_fails`` failures within
``fail_timeout`` take an upstream out for ``fail_timeout``) and a retry on the next upstream when a connect fails.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    host_name,
    is_ip_address,
    require_bool,
    require_int,
    require_str,
    safe_name,
)

BACKENDS = ("nginx", "haproxy")
HEADER = "# Managed by kubeforge.cluster.apiserver_proxy: changes here are overwritten (a backup is kept).\n"
# Worker users the distributions' packages create.
DEFAULT_USER = {"nginx": "www-data", "haproxy": "haproxy"}
CONFIG_NAME = {"nginx": "nginx.conf", "haproxy": "haproxy.cfg"}
_DURATION_RE = re.compile(r"^([0-9]{1,9})(ms|s|m|h|d)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
_UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}$")
# A user (and group) name as useradd's default NAME_REGEX allows it, a little wider: never a path or an option.
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_SERVER_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")
_COMMENT_RE = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Upstream:
    host: str          # DNS name or IP literal (IPv6 without brackets)
    port: int
    name: str          # inventory name or the host; a haproxy server name (unique, safe characters)

    @property
    def address(self):
        """``host:port`` as both nginx and haproxy write it (``[v6]:port``)."""
        return "%s:%d" % ("[%s]" % self.host if ":" in self.host else self.host, self.port)


@dataclass(frozen=True)
class ProxySpec:
    backend: str
    listen_address: str
    listen_port: int
    upstreams: tuple
    connect_timeout_ms: int = 1000
    proxy_timeout_ms: int = 600000
    max_fails: int = 2
    fail_timeout_ms: int = 10000
    access_log: bool = False
    workers: int = 2
    max_connections: int = 4096
    user: str = ""
    unit_name: str = "kube-apiserver-proxy"
    config_dir: str = "/etc/kube-apiserver-proxy"

    @property
    def listen(self):
        return "%s:%d" % ("[%s]" % self.listen_address if ":" in self.listen_address else self.listen_address, self.listen_port)

    @property
    def config_file(self):
        return "%s/%s" % (self.config_dir, CONFIG_NAME[self.backend])

    @property
    def run_dir(self):
        return "/run/%s" % self.unit_name

    @property
    def pid_file(self):
        return "%s/%s.pid" % (self.run_dir, self.backend)


def parse_duration(option, value):
    """Milliseconds from ``"1s"``, ``"500ms"``, ``"10m"``, ``"1h"``, ``"1d"`` or an integer of seconds."""
    if isinstance(value, bool):
        raise InputError(option, "must be a duration such as 1s, 500ms or 10m, got a bool")
    if isinstance(value, int):
        value = "%ds" % value
    require_str(option, value)
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise InputError(option, "%r is not a duration; write a number with ms, s, m, h or d (for example 1s, 500ms, 10m)" % value)
    milliseconds = int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]
    if milliseconds <= 0:
        raise InputError(option, "must be longer than 0, got %r" % value)
    return milliseconds


def format_duration(milliseconds):
    """The largest whole unit both nginx and haproxy accept: 600000 -> ``10m``, 1500 -> ``1500ms``."""
    for unit in ("d", "h", "m", "s"):
        if milliseconds % _UNIT_MS[unit] == 0:
            return "%d%s" % (milliseconds // _UNIT_MS[unit], unit)
    return "%dms" % milliseconds


_UPSTREAM_EXAMPLES = "for example 10.0.0.11, 10.0.0.11:5443, [fd00::11]:5443 or cp1.example.internal:5443"


def _upstream_host(option, host, shown):
    try:
        host_name(option, host)
    except InputError:
        raise InputError(option, "%r is neither an IP address nor a DNS name (with an optional :port); %s" % (shown, _UPSTREAM_EXAMPLES)) from None


def parse_upstream(option, value, default_port):
    """One upstream from ``"host"``, ``"host:port"``, ``"[v6]:port"``, a bare IPv6 literal or a dict with host/port/name."""
    name = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"host", "port", "name"})
        if unknown:
            raise InputError(option, "unknown keys %s; an upstream has host, port and name" % ", ".join(unknown))
        if "host" not in value:
            raise InputError(option, "has no host; give the apiserver's address or DNS name")
        host = require_str(option + ".host", value["host"]).strip()
        port = require_int(option + ".port", value.get("port", default_port), 1, 65535)
        if value.get("name") is not None:
            name = require_str(option + ".name", value["name"])
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        _upstream_host(option + ".host", host, value["host"])
    else:
        text = require_str(option, value).strip()
        if is_ip_address(text):  # a bare IPv6 literal has colons but no port
            host, port = text, default_port
        else:
            match = re.match(r"^(\[[^\]]*\]|[^:\[\]]+)(?::([0-9]{1,5}))?$", text)
            if not match:
                raise InputError(option, "%r is neither an IP address nor a DNS name (with an optional :port); %s" % (text, _UPSTREAM_EXAMPLES))
            host = match.group(1)
            port = int(match.group(2)) if match.group(2) else default_port
            if host.startswith("["):
                host = host[1:-1]
                if not is_ip_address(host) or ":" not in host:
                    raise InputError(option, "%r: only IPv6 addresses go in brackets" % text)
            _upstream_host(option, host, text)
            require_int(option + " port", port, 1, 65535)
    if is_ip_address(host):
        host = str(ipaddress.ip_address(host))
    return Upstream(host=host, port=port, name=name or host)


def server_names(upstreams):
    """haproxy server names: the upstream's name in safe characters, made unique."""
    seen = {}
    result = []
    for upstream in upstreams:
        base = _SERVER_NAME_RE.sub("_", upstream.name)[:60] or "apiserver"
        count = seen.get(base, 0) + 1
        seen[base] = count
        result.append(base if count == 1 else "%s_%d" % (base, count))
    return result


def build_spec(params):
    """A ``ProxySpec`` from module parameters (names as in the module's argument spec); ``InputError`` names the option."""
    backend = params.get("backend", "nginx")
    if backend not in BACKENDS:
        raise InputError("backend", "must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    listen_address = require_str("listen_address", params.get("listen_address", "127.0.0.1")).strip()
    if listen_address.startswith("[") and listen_address.endswith("]"):
        listen_address = listen_address[1:-1]
    if not is_ip_address(listen_address):
        raise InputError("listen_address", "%r is not an IP address; use 127.0.0.1 (node-local), 0.0.0.0 or :: (every address, "
                                           "for an external load balancer) or one of the node's addresses" % listen_address)
    listen_address = str(ipaddress.ip_address(listen_address))
    listen_port = require_int("listen_port", params.get("listen_port", 6443), 1, 65535)
    default_port = require_int("upstream_port", params.get("upstream_port", 5443), 1, 65535)
    raw = params.get("upstreams")
    if not isinstance(raw, (list, tuple)):
        raise InputError("upstreams", "must be a list of apiserver addresses, got %s" % type(raw).__name__)
    if not raw:
        raise InputError("upstreams", "is empty; list at least one kube-apiserver (address or DNS name, optionally :port)")
    upstreams = [parse_upstream("upstreams[%d]" % index, item, default_port) for index, item in enumerate(raw)]
    seen = {}
    for index, upstream in enumerate(upstreams):
        key = (upstream.host.lower(), upstream.port)
        if key in seen:
            raise InputError("upstreams[%d]" % index, "%s is listed twice (also upstreams[%d])" % (upstream.address, seen[key]))
        seen[key] = index
        if upstream.port == listen_port and (upstream.host == listen_address or ipaddress.ip_address(listen_address).is_unspecified):
            raise InputError("listen_port", "%d is also the port of upstream %s: the proxy would take the port its kube-apiserver "
                                            "binds (or proxy to itself); use another listen port or apiserver port" % (listen_port, upstream.address))
    user = params.get("user") or DEFAULT_USER[backend]
    workers = params.get("workers", 2)
    return ProxySpec(
        backend=backend,
        listen_address=listen_address,
        listen_port=listen_port,
        upstreams=tuple(upstreams),
        connect_timeout_ms=parse_duration("connect_timeout", params.get("connect_timeout", "1s")),
        proxy_timeout_ms=parse_duration("proxy_timeout", params.get("proxy_timeout", "10m")),
        max_fails=require_int("max_fails", params.get("max_fails", 2), 1, 1000),
        fail_timeout_ms=parse_duration("fail_timeout", params.get("fail_timeout", "10s")),
        access_log=require_bool("access_log", params.get("access_log", False)),
        workers=require_int("workers", workers, 1, 256),
        max_connections=require_int("max_connections", params.get("max_connections", 4096), 16, 1048576),
        user=safe_name("user", user, what="user name", pattern=_USER_RE),
        unit_name=safe_name("unit_name", params.get("unit_name", "kube-apiserver-proxy"), what="unit name", pattern=_UNIT_NAME_RE),
        config_dir=absolute_path("config_dir", params.get("config_dir", "/etc/kube-apiserver-proxy")),
    )


def render_nginx(spec, stream_module=None):
    """nginx.conf for the stream proxy; ``stream_module`` is the .so to load (None when built in)."""
    lines = [HEADER.rstrip("\n"),
             "# Own master, pid file and logs: it runs beside any nginx.service the host has."]
    if stream_module:
        lines.append("load_module %s;" % stream_module)
    lines += [
        "daemon off;",
        "pid %s;" % spec.pid_file,
        "user %s;" % spec.user,
        "worker_processes %d;" % spec.workers,
        "error_log stderr notice;",
        "events {",
        "    worker_connections %d;" % spec.max_connections,
        "}",
        "stream {",
    ]
    if spec.access_log:
        lines.append("    log_format kube_apiserver_proxy '$remote_addr [$time_local] $status $session_time "
                     "$bytes_received $bytes_sent \"$upstream_addr\" $upstream_connect_time';")
    lines += [
        "    upstream kube_apiserver {",
        "        zone kube_apiserver 64k;  # least_conn counts and failures shared by all workers",
        "        least_conn;",
    ]
    for upstream in spec.upstreams:
        comment = "  # %s" % upstream.name if upstream.name != upstream.host else ""
        lines.append("        server %s max_fails=%d fail_timeout=%s;%s"
                     % (upstream.address, spec.max_fails, format_duration(spec.fail_timeout_ms), comment))
    listen = spec.listen + (" ipv6only=on" if spec.listen_address == "::" else "")
    lines += [
        "    }",
        "    server {",
        "        listen %s;" % listen,
        "        proxy_pass kube_apiserver;",
        "        proxy_connect_timeout %s;" % format_duration(spec.connect_timeout_ms),
        "        proxy_timeout %s;" % format_duration(spec.proxy_timeout_ms),
        "        proxy_next_upstream on;  # a refused or timed-out connect is retried on the next apiserver",
        "        proxy_next_upstream_tries %d;" % len(spec.upstreams),
    ]
    if spec.access_log:
        lines.append("        access_log syslog:server=unix:/dev/log,tag=%s,nohostname kube_apiserver_proxy;"
                     % spec.unit_name.replace("-", "_"))
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def render_haproxy(spec):
    """haproxy.cfg with the same behaviour: leastconn, redispatch on connect failure, passive + active checks.

    haproxy marks a server down from observed connect errors (``observe layer4``) but needs its health check to bring
    it back; the check is an HTTPS GET /healthz every ``fail_timeout`` (the apiserver answers it without logging a TLS
    handshake error, which a bare TCP check would cause).
    """
    interval = format_duration(spec.fail_timeout_ms)
    lines = [
        HEADER.rstrip("\n"),
        "global",
        "    maxconn %d" % spec.max_connections,
        "    nbthread %d" % spec.workers,
        "    user %s" % spec.user,
        "    group %s" % spec.user,
        "    pidfile %s" % spec.pid_file,
        "    log stdout format short local0 info",
        "defaults",
        "    mode tcp",
        "    log global",
    ]
    # Server DOWN/UP events are always logged; each connection only with the access log.
    lines.append("    option tcplog" if spec.access_log else "    option dontlog-normal")
    lines += [
        "    timeout connect %s" % format_duration(spec.connect_timeout_ms),
        "    timeout client %s" % format_duration(spec.proxy_timeout_ms),
        "    timeout server %s" % format_duration(spec.proxy_timeout_ms),
        "    timeout check %s" % format_duration(spec.connect_timeout_ms * 2),
        "    retries %d" % len(spec.upstreams),
        "    option redispatch 1  # every retry of a failed connect goes to another apiserver",
        "frontend kube_apiserver",
        "    bind %s%s" % (spec.listen, " v6only" if spec.listen_address == "::" else ""),
        "    default_backend kube_apiserver",
        "backend kube_apiserver",
        "    balance leastconn",
        "    option httpchk GET /healthz",
        "    http-check expect rstatus ^(2[0-9][0-9]|401|403)$",
        "    default-server check check-ssl verify none inter %s fall %d rise 1 observe layer4 error-limit %d on-error mark-down"
        % (interval, spec.max_fails, spec.max_fails),
    ]
    for name, upstream in zip(server_names(spec.upstreams), spec.upstreams):
        lines.append("    server %s %s" % (name, upstream.address))
    return "\n".join(lines) + "\n"


def render_config(spec, stream_module=None):
    return render_nginx(spec, stream_module) if spec.backend == "nginx" else render_haproxy(spec)


def render_unit(spec, binary):
    """The systemd unit: its own name, config, pid file and runtime directory; ordered before kubelet."""
    config = spec.config_file
    common_head = [
        HEADER.rstrip("\n"),
        "[Unit]",
        "Description=Node-local L4 proxy to the kube-apiservers on %s (%s)" % (spec.listen, spec.backend),
        "Documentation=man:%s(8)" % spec.backend,
        "Wants=network-online.target",
        "After=network-online.target",
        "# kubelet, kube-proxy and kubeadm reach the API through this proxy (controlPlaneEndpoint %s)." % spec.listen,
        "Before=kubelet.service",
        "",
        "[Service]",
    ]
    if spec.backend == "nginx":
        service = [
            "Type=exec",
            "ExecStartPre=%s -t -q -e stderr -c %s" % (binary, config),
            "ExecStart=%s -e stderr -c %s" % (binary, config),
            "# The master stays; new workers take the new upstreams, old ones finish their connections.",
            "ExecReload=%s -t -q -e stderr -c %s" % (binary, config),
            "ExecReload=/bin/kill -s HUP $MAINPID",
            "KillMode=mixed",
        ]
    else:
        service = [
            "Type=notify",
            "ExecStartPre=%s -c -q -f %s" % (binary, config),
            "ExecStart=%s -Ws -f %s -p %s" % (binary, config, spec.pid_file),
            "# The master stays; a new worker takes the new upstreams, the old one finishes its connections.",
            "ExecReload=%s -c -q -f %s" % (binary, config),
            "ExecReload=/bin/kill -s USR2 $MAINPID",
            "KillMode=mixed",
            "SuccessExitStatus=143",
        ]
    tail = [
        "RuntimeDirectory=%s" % spec.unit_name,
        "Restart=always",
        "RestartSec=2s",
        "LimitNOFILE=%d" % max(65536, spec.max_connections * 2 + 64),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(common_head + service + tail) + "\n"


def config_data(text):
    """What decides "changed": the lines without comments and blank lines (the header may change between releases)."""
    if text is None:
        return None
    data = []
    for line in text.splitlines():
        stripped = _COMMENT_RE.sub("", line).strip()
        if stripped:
            data.append(" ".join(stripped.split()))
    return data


def listen_of(text):
    """The listen address:port a rendered config (either backend) holds, or None."""
    match = re.search(r"^\s*(?:listen|bind)\s+([^\s;]+)", text or "", re.MULTILINE)
    return match.group(1) if match else None
