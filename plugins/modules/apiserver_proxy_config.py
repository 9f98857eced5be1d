#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_proxy_config
short_description: Configure a node-local L4 proxy (nginx stream or haproxy) in front of the kube-apiservers
version_added: 0.1.0
description:
  - Renders the configuration of a layer-4 proxy that listens on O(listen_address):O(listen_port) and balances
    connections (least connections) across the O(upstreams), with a connect timeout, an idle timeout, passive health
    checks (O(max_fails) failed connects within O(fail_timeout) take an upstream out for O(fail_timeout)) and a retry
    of a failed connect on the next upstream.
  - The proxy is its own systemd unit (O(unit_name)) with its own configuration file in O(config_dir), pid file and
    runtime directory, so it runs beside an C(nginx.service) or C(haproxy.service) the host already has; those are
    never touched.
  - Before any file is replaced it checks that no other process holds the listen address and port (naming the
    process), and has the real binary judge the candidate (C(nginx -t -c) or C(haproxy -c -f)). A refused run changes
    nothing.
  - The configuration is replaced atomically with a backup, the unit file atomically; a unit change runs
    C(systemctl daemon-reload). The module does not start, reload or restart the proxy; it returns RV(action) saying
    what the running proxy needs, so that a handler reloads (the master process stays) or restarts only when needed.
  - Switching O(backend) removes the other backend's configuration file from O(config_dir).
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - Checks the port and validates the candidate with the real binary as a real run does; only writes are skipped.
  diff_mode:
    support: full
  safe_file_operations:
    support: full
options:
  backend:
    description: The proxy program.
    type: str
    choices: [nginx, haproxy]
    default: nginx
  upstreams:
    description:
      - The kube-apiservers, each a string C(host), C(host:port), C([ipv6]:port) or a dict with C(host), C(port) and C(name)
        (C(name) shows in messages and is the haproxy server name). C(host) is an IP address or a DNS name.
    type: list
    elements: raw
    required: true
  upstream_port:
    description: Port of an upstream that gives none (the port the kube-apiservers bind).
    type: int
    default: 5443
  listen_address:
    description: IP address the proxy listens on; C(0.0.0.0) or C(::) for every address (an external load balancer use).
    type: str
    default: 127.0.0.1
  listen_port:
    description: Port the proxy listens on.
    type: int
    default: 6443
  connect_timeout:
    description: Time to establish a connection to an upstream before the next one is tried (C(500ms), C(1s), ...; an integer is seconds).
    type: raw
    default: 1s
  proxy_timeout:
    description: Idle time after which a proxied connection is closed (C(10m)); watches send data more often than that.
    type: raw
    default: 10m
  max_fails:
    description: Failed connects within O(fail_timeout) after which an upstream is taken out for O(fail_timeout).
    type: int
    default: 2
  fail_timeout:
    description: The window of O(max_fails) and the time an upstream stays out (haproxy also checks it that often).
    type: raw
    default: 10s
  access_log:
    description: Log every connection (nginx to syslog C(/dev/log), haproxy to stdout, both reaching the journal).
    type: bool
    default: false
  workers:
    description: nginx worker processes or haproxy threads.
    type: int
    default: 2
  max_connections:
    description: Connections each nginx worker (or haproxy as a whole) accepts.
    type: int
    default: 4096
  user:
    description: Unprivileged user of the workers; empty uses the package's (C(www-data) for nginx, C(haproxy) for haproxy).
    type: str
    default: ""
  unit_name:
    description: Name of the systemd unit (without C(.service)); also the name of its runtime directory under C(/run).
    type: str
    default: kube-apiserver-proxy
  config_dir:
    description: Directory of the configuration file (C(nginx.conf) or C(haproxy.cfg)).
    type: path
    default: /etc/kube-apiserver-proxy
  unit_dir:
    description: Directory the unit file is written to.
    type: path
    default: /etc/systemd/system
  backup:
    description: Keep a time-stamped copy of the previous configuration file when it is replaced.
    type: bool
    default: true
notes:
  - Only the distributions' own packages are supported (Debian C(nginx) with C(libnginx-mod-stream), or C(haproxy)); the
    binary is found in C(PATH), C(/usr/sbin) or C(/usr/local/sbin), and nginx's stream module is located from C(nginx -V).
seealso:
  - module: kubeforge.cluster.apiserver_proxy_check
"""

EXAMPLES = r"""
- name: Proxy 127.0.0.1:6443 to three kube-apiservers on port 5443
  kubeforge.cluster.apiserver_proxy_config:
    upstreams:
      - {name: cp1, host: 10.0.0.11}
      - {name: cp2, host: 10.0.0.12}
      - {name: cp3, host: 10.0.0.13}
  register: proxy
  notify:
    - Reload apiserver proxy
    - Restart apiserver proxy

- name: haproxy on every address, for an external load balancer
  kubeforge.cluster.apiserver_proxy_config:
    backend: haproxy
    listen_address: 0.0.0.0
    upstreams: ["10.0.0.11:5443", "cp2.example.internal:5443", "[fd00::13]:5443"]
    connect_timeout: 500ms
    access_log: true
"""

RETURN = r"""
action:
  description: >-
    What the running proxy needs: V(none); V(start) (not running); V(reload) (configuration changed, the master stays);
    V(restart) (unit file changed, backend switched, listen address changed, or the binary was replaced by an upgrade).
  returned: success
  type: str
  sample: reload
reasons:
  description: Why RV(action) is needed.
  returned: success
  type: list
  elements: str
  sample: ["the configuration changes; the master keeps running and new workers take it"]
backend:
  description: The proxy program.
  returned: success
  type: str
  sample: nginx
listen:
  description: The listen address and port.
  returned: success
  type: str
  sample: 127.0.0.1:6443
upstreams:
  description: The upstreams as written to the configuration.
  returned: success
  type: list
  elements: str
  sample: ["10.0.0.11:5443", "10.0.0.12:5443"]
config_file:
  description: The configuration file.
  returned: success
  type: str
  sample: /etc/kube-apiserver-proxy/nginx.conf
unit_file:
  description: The unit file.
  returned: success
  type: str
  sample: /etc/systemd/system/kube-apiserver-proxy.service
binary:
  description: The proxy binary the unit runs.
  returned: success
  type: str
  sample: /usr/sbin/nginx
config_changed:
  description: Whether the configuration file was (or would be) replaced.
  returned: success
  type: bool
unit_changed:
  description: Whether the unit file was (or would be) replaced.
  returned: success
  type: bool
unit_created:
  description: Whether the unit file did not exist before this run.
  returned: success
  type: bool
removed:
  description: Configuration files of the other backend that were (or would be) removed.
  returned: success
  type: list
  elements: str
main_pid:
  description: The running master's PID before this run (0 when not running).
  returned: success
  type: int
validated:
  description: Whether the real binary judged the new configuration.
  returned: success
  type: bool
backup_file:
  description: The copy of the previous configuration file.
  returned: when the configuration file was replaced and O(backup=true)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_config import ensure
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_node import NodeOps, ProxyError
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import build_spec
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path

# The /proc tree read for listening sockets and the running master; module tests point it at a fake tree.
PROC_ROOT = "/proc"


def argument_spec():
    return dict(
        backend=dict(type="str", choices=["nginx", "haproxy"], default="nginx"),
        upstreams=dict(type="list", elements="raw", required=True),
        upstream_port=dict(type="int", default=5443),
        listen_address=dict(type="str", default="127.0.0.1"),
        listen_port=dict(type="int", default=6443),
        connect_timeout=dict(type="raw", default="1s"),
        proxy_timeout=dict(type="raw", default="10m"),
        max_fails=dict(type="int", default=2),
        fail_timeout=dict(type="raw", default="10s"),
        access_log=dict(type="bool", default=False),
        workers=dict(type="int", default=2),
        max_connections=dict(type="int", default=4096),
        user=dict(type="str", default=""),
        unit_name=dict(type="str", default="kube-apiserver-proxy"),
        config_dir=dict(type="path", default="/etc/kube-apiserver-proxy"),
        unit_dir=dict(type="path", default="/etc/systemd/system"),
        backup=dict(type="bool", default=True),
    )


def make_ops(module):
    return NodeOps(module, proc_root=PROC_ROOT)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        spec = build_spec(module.params)
        unit_dir = absolute_path("unit_dir", module.params["unit_dir"])
    except InputError as exc:
        module.fail_json(msg=str(exc))
    try:
        result, warnings = ensure(spec, make_ops(module), module.check_mode, unit_dir=unit_dir,
                                  backup=module.params["backup"])
    except ProxyError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except ManagedFileError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
