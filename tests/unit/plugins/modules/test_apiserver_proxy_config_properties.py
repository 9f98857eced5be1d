# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of kubeforge.cluster.apiserver_proxy_config over generated upstreams, addresses, names and durations
(hypothesis).

Each example runs main() with the config and unit directories in a throwaway root (an existing proxy's files in
it, or none) and the node's commands scripted, and checks:

* nothing outside the root is opened, listed or written (audit hook);
* a refusal leaves every file byte-identical and its message starts with the option it is about;
* a success writes a config whose server lines are exactly the accepted upstreams and whose listen line is the
  requested address, and a second run with the same input changes nothing.
"""

from __future__ import annotations

import os
import re

from hypothesis import given
from hypothesis import strategies as st
from module_harness import ExitJson, FailJson, call_main
from properties import PROPERTY, Counter, any_value, audit, hostile_word, mostly, outside, throwaway_root, tree_snapshot
from test_apiserver_proxy_config_module import NGINX_V, ScriptedNode
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import parse_upstream
from ansible_collections.kubeforge.cluster.plugins.modules import apiserver_proxy_config

OPTIONS = ("backend:", "upstreams", "upstream_port:", "listen_address:", "listen_port:", "connect_timeout:", "proxy_timeout:",
           "max_fails:", "fail_timeout:", "access_log:", "workers:", "max_connections:", "user:", "unit_name:", "config_dir:",
           "unit_dir:")
hosts = st.sampled_from(["10.0.0.%d" % n for n in range(11, 31)] + ["fd00::13", "fd00::14", "cp1.example.internal", "cp2.example.internal",
                                                                    "localhost", "192.0.2.14"])
upstream = mostly(st.one_of(hosts, hosts.map(lambda h: ("[%s]" % h if ":" in h else h) + ":5443"),
                            st.builds(lambda h, p, n: {"host": h, "port": p, "name": n}, hosts, st.integers(1, 65535),
                                      st.sampled_from(["cp1", "cp 2", "api"]))),
                  st.one_of(hostile_word, any_value), 15)
durations = mostly(st.sampled_from(["1s", "500ms", "10m", 3, "2h"]), st.one_of(hostile_word, any_value), 15)
addresses = mostly(st.sampled_from(["127.0.0.1", "0.0.0.0", "::", "::1", "10.0.0.5"]), hostile_word, 15)
names = mostly(st.sampled_from(["", "www-data", "haproxy"]), hostile_word, 15)
units = mostly(st.just("kube-apiserver-proxy"), hostile_word, 15)


def test_apiserver_proxy_config_stays_in_its_root_and_refuses_cleanly(monkeypatch):
    counter = Counter("apiserver_proxy_config: generated upstreams, listen addresses, durations, users and unit names")

    @PROPERTY
    @given(upstreams=mostly(st.lists(upstream, min_size=1, max_size=3), st.just([]), 15), listen_address=addresses,
           listen_port=mostly(st.just(6443), st.integers(-5, 70000), 9),
           connect_timeout=durations, fail_timeout=durations, user=names, unit_name=units, backend=st.sampled_from(["nginx", "haproxy"]),
           existing=st.booleans(), check_mode=st.booleans())
    def prop(upstreams, listen_address, listen_port, connect_timeout, fail_timeout, user, unit_name, backend, existing, check_mode):
        with throwaway_root("kf-prop-proxy-") as root:
            state = {"binaries": {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy"}, "nginx_v": NGINX_V,
                     "files": {"/usr/lib/nginx/modules/ngx_stream_module.so"}, "validated": [], "refuse": None, "daemon_reloads": 0,
                     "probed": [], "bind_error": None, "service": {"active": existing, "main_pid": 40 if existing else 0, "loaded": existing},
                     "foreign": [], "ours": [], "foreign_any": [], "replaced": None}
            monkeypatch.setattr(apiserver_proxy_config, "make_ops", lambda module: ScriptedNode(module, state))
            base = {"config_dir": os.path.join(root, "etc"), "unit_dir": os.path.join(root, "systemd")}
            if existing:
                kind, result = call_main(apiserver_proxy_config.main, dict(base, upstreams=["10.9.9.9"]))
                assert kind is ExitJson, result
            args = dict(base, upstreams=upstreams, listen_address=listen_address, listen_port=listen_port, backend=backend,
                        connect_timeout=connect_timeout, fail_timeout=fail_timeout, user=user, unit_name=unit_name)
            before = tree_snapshot(root)
            with audit() as events:
                kind, result = call_main(apiserver_proxy_config.main, args, check_mode=check_mode, diff=True)
            counter(kind is FailJson)
            assert outside(events, root) == [], (args, outside(events, root))
            if kind is FailJson or check_mode:
                assert tree_snapshot(root) == before, (args, result)
            if kind is FailJson:
                assert result["msg"].startswith(OPTIONS), result["msg"]
                return
            wanted = {parse_upstream("u", value, 5443).address for value in upstreams}
            listen = "[%s]" % listen_address if ":" in listen_address else listen_address
            assert set(result["upstreams"]) == wanted and result["listen"].startswith(listen)
            if check_mode:
                return
            text = open(os.path.join(root, "etc", "nginx.conf" if backend == "nginx" else "haproxy.cfg")).read()
            pattern = r"^\s+server (\S+) max_fails" if backend == "nginx" else r"^\s+server \S+ (\S+)$"
            servers = re.findall(pattern, text, re.MULTILINE)
            assert set(servers) == wanted and len(servers) == len(upstreams), (servers, upstreams)
            state["service"] = {"active": True, "main_pid": 41, "loaded": True}
            again = call_main(apiserver_proxy_config.main, args)
            assert again[0] is ExitJson and again[1]["changed"] is False, again

    prop()
    counter.report()
