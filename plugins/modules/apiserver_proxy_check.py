#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_proxy_check
short_description: Prove that the node-local apiserver proxy forwards to its upstreams
version_added: 0.1.0
description:
  - Connects to each upstream directly from the node (TCP, then a TLS handshake that identifies the server by its
    certificate), then through the proxy's listener until every upstream that answered directly has been reached
    through it.
  - An upstream that does not answer is named in a warning with the reason (connection refused, no answer, name does
    not resolve). When none answers the module warns (before C(kubeadm init) no apiserver runs yet), or fails when
    O(strict=true).
  - Fails when nothing listens on the listener, or when upstreams answer directly but no connection through the
    listener reaches one.
  - Read-only.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.info_module
options:
  upstreams:
    description: The upstreams, in the forms M(kubeforge.cluster.apiserver_proxy_config) accepts.
    type: list
    elements: raw
    required: true
  upstream_port:
    description: Port of an upstream that gives none.
    type: int
    default: 5443
  listen_address:
    description: The proxy's listen address; an unspecified address (C(0.0.0.0), C(::)) is reached on loopback.
    type: str
    default: 127.0.0.1
  listen_port:
    description: The proxy's listen port.
    type: int
    default: 6443
  tls:
    description:
      - Do a TLS handshake on each connection and tell the upstreams apart by their certificates.
      - V(false) only checks that a connection through the listener is not closed by the proxy (for non-TLS upstreams).
    type: bool
    default: true
  timeout:
    description: Seconds for each connection and handshake.
    type: float
    default: 2.0
  attempts:
    description: Connections through the listener at most; 0 means three per upstream that answers (at least 4).
    type: int
    default: 0
  strict:
    description: Fail when no upstream answers (instead of a warning).
    type: bool
    default: false
  unit_name:
    description: The proxy's systemd unit, named in messages.
    type: str
    default: kube-apiserver-proxy
seealso:
  - module: kubeforge.cluster.apiserver_proxy_config
"""

EXAMPLES = r"""
- name: Check that the proxy forwards to every apiserver that is up
  kubeforge.cluster.apiserver_proxy_check:
    upstreams: ["10.0.0.11:5443", "10.0.0.12:5443", "10.0.0.13:5443"]
    strict: true
"""

RETURN = r"""
listener:
  description: Where the check connected to reach the proxy.
  returned: always
  type: str
  sample: 127.0.0.1:6443
listening:
  description: Whether the listener accepted a connection.
  returned: always
  type: bool
forwarded:
  description: Whether a connection through the listener reached an upstream.
  returned: always
  type: bool
upstreams:
  description: One entry per upstream; C(up) and C(reason) from the direct connection, C(via_proxy) whether it was reached
    through the listener (null without TLS, where upstreams cannot be told apart).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "cp1", "address": "10.0.0.11:5443", "up": true, "reason": null, "via_proxy": true}]
up:
  description: Names of the upstreams that answered directly.
  returned: always
  type: list
  elements: str
down:
  description: Names of the upstreams that did not answer.
  returned: always
  type: list
  elements: str
proxied_connections:
  description: Connections made through the listener.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_probe import check
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import build_spec
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError


def argument_spec():
    return dict(
        upstreams=dict(type="list", elements="raw", required=True),
        upstream_port=dict(type="int", default=5443),
        listen_address=dict(type="str", default="127.0.0.1"),
        listen_port=dict(type="int", default=6443),
        tls=dict(type="bool", default=True),
        timeout=dict(type="float", default=2.0),
        attempts=dict(type="int", default=0),
        strict=dict(type="bool", default=False),
        unit_name=dict(type="str", default="kube-apiserver-proxy"),
    )


def judge(report, strict, unit):
    """``(failure message or None, warnings)`` for a probe report."""
    warnings = []
    rows = report["upstreams"]
    for row in rows:
        if not row["up"]:
            warnings.append("apiserver upstream %s (%s) does not answer from this node: %s" % (row["name"], row["address"], row["reason"]))
    if not report["listening"]:
        return ("nothing accepts connections on %s (%s): the proxy is not running or listens elsewhere; see systemctl status %s "
                "and journalctl -u %s" % (report["listener"], report.get("listen_error"), unit, unit)), warnings
    if not report["up"]:
        message = "no apiserver upstream answers from this node (%s)" % "; ".join(
            "%s: %s" % (row["address"], row["reason"]) for row in rows)
        if strict:
            return message, warnings
        warnings.append(message + "; the proxy listens on %s and forwards once one is up (before kubeadm init none is)" % report["listener"])
        return None, warnings
    if not report["forwarded"]:
        return ("the proxy on %s accepted %d connections but none reached an apiserver (%s), while %s answer(s) directly; "
                "check the proxy's upstreams and journalctl -u %s"
                % (report["listener"], report["proxied_connections"], "; ".join(sorted(set(report["proxied_failures"]))),
                   ", ".join(report["up"]), unit)), warnings
    for row in rows:
        if row["up"] and row["via_proxy"] is False:
            warnings.append("apiserver upstream %s (%s) answers directly but was not reached through %s in %d connections; the proxy "
                            "may still hold it as failed (fail_timeout) or not list it"
                            % (row["name"], row["address"], report["listener"], report["proxied_connections"]))
    return None, warnings


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        spec = build_spec(dict(upstreams=params["upstreams"], upstream_port=params["upstream_port"],
                               listen_address=params["listen_address"], listen_port=params["listen_port"]))
    except InputError as exc:
        module.fail_json(msg=str(exc))
    if params["timeout"] <= 0:
        module.fail_json(msg="timeout: must be more than 0 seconds, got %s" % params["timeout"])
    report = check(spec.listen_address, spec.listen_port, list(spec.upstreams), timeout=params["timeout"], tls=params["tls"],
                   attempts=max(0, params["attempts"]))
    failure, warnings = judge(report, params["strict"], params["unit_name"])
    for warning in warnings:
        module.warn(warning)
    if failure:
        module.fail_json(msg=failure, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
