#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cri_socket
short_description: Find the node's real CRI endpoint for kubeadm, kubelet and crictl
version_added: 0.1.0
description:
  - Checks candidate unix sockets and decides for each whether a container runtime serves the Kubernetes
    Container Runtime Interface (CRI) on it, then selects the one endpoint that kubeadm, kubelet and crictl
    should use.
  - CRI capability is decided by a real gRPC call, C(runtime.v1.RuntimeService/Version), made with a small
    client built on the Python standard library, so the node needs nothing but C(python3). A socket that answers
    C(UNIMPLEMENTED unknown service runtime.v1.RuntimeService) is not CRI, however its path looks; this is
    Docker's bundled containerd, which has its C(cri) plugin disabled.
  - For a socket without the CRI, the containerd version API and plugin list identify a containerd whose
    C(cri) plugin is disabled or failed to start. When the gRPC probe cannot decide and C(crictl) is
    installed, C(crictl version) decides. Each entry's RV(endpoints[].reason) names the evidence that decided.
  - Two spellings of one socket (for example C(/run/...) and C(/var/run/...) when C(/var/run) links to
    C(/run)) are probed once and count once; the later spelling is reported with RV(endpoints[].alias_of).
  - All candidates are probed at the same time, each within O(timeout) (every connection, read, write and header
    decoding of all the calls made for one candidate share that one deadline), so the module takes about O(timeout)
    however many candidates there are. A peer that floods headers, data or pings, drips, never accepts, or sends
    garbage is cut off by fixed limits, and RV(endpoints[].reason) says what it did.
  - Read-only. Fails when no endpoint, or more than one, could be used and O(preferred) or O(preferred_runtime) does
    not settle it; the message lists each endpoint with its runtime and names the option that settles it.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module never changes the node; it runs the same probes in check mode.
  diff_mode:
    support: none
options:
  candidates:
    description:
      - Endpoints to check, as C(unix:///path) URLs or absolute socket paths.
      - The default is the list kubeadm knows (containerd, CRI-O, cri-dockerd) in both C(/run) and
        C(/var/run) spellings.
      - Setting this replaces the default list; use O(extra_candidates) to add sockets to it.
    type: list
    elements: str
    default:
      - unix:///run/containerd/containerd.sock
      - unix:///var/run/containerd/containerd.sock
      - unix:///run/crio/crio.sock
      - unix:///var/run/crio/crio.sock
      - unix:///run/cri-dockerd.sock
      - unix:///var/run/cri-dockerd.sock
  extra_candidates:
    description:
      - Further endpoints checked after O(candidates), for runtimes listening somewhere else.
    type: list
    elements: str
    default: []
  preferred:
    description:
      - The endpoint to use, as C(unix:///path) or an absolute socket path; it is checked even when it is not among
        the candidates. The roles of this collection pass the inventory variable C(kubeforge_cri_socket) here.
      - Empty (the default) means no preference, the same as leaving it out.
      - The module fails when the preferred endpoint is not CRI-capable, listing the endpoints that are.
      - A runtime name is refused here; use O(preferred_runtime) for that.
    type: str
    default: ""
  preferred_runtime:
    description:
      - Select the one CRI endpoint served by this runtime (as the probe identifies it) when several are CRI-capable.
        Fails when that runtime serves none, or several.
      - Needs O(probe=true), only a probe tells the runtime.
      - With O(preferred) also set, the preferred endpoint is used and must be served by this runtime.
    type: str
    choices: [containerd, crio, cri-dockerd]
  probe:
    description:
      - Decide CRI capability with gRPC calls (and C(crictl) when installed).
      - With V(false) only whether each socket accepts connections is checked (what kubeadm itself does),
        RV(endpoints[].cri) stays V(null) and every listening socket counts as a possible CRI endpoint.
    type: bool
    default: true
  timeout:
    description:
      - Seconds allowed for all the checks of one candidate (connection, gRPC calls, C(crictl)); candidates are
        checked at the same time. More than 0 and at most 60.
    type: float
    default: 2.0
notes:
  - Run with C(become=true), runtime sockets are usually owned by root with mode 0660.
  - C(/etc/crictl.yaml) is written from the result by the role C(kubeforge.cluster.crictl).
seealso:
  - name: kubeadm init --cri-socket
    description: The endpoint kubeadm uses when several CRI sockets exist.
    link: https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-init/
"""

EXAMPLES = r"""
- name: Find the CRI endpoint (fails when the node is ambiguous)
  kubeforge.cluster.cri_socket:
    preferred: "{{ kubeforge_cri_socket | default('') }}"
  register: cri

- name: Use it for kubeadm
  ansible.builtin.debug:
    msg: "kubeadm join ... --cri-socket {{ cri.cri_socket }} ({{ cri.selected_reason }})"

- name: Docker + cri-dockerd node whose Docker also runs containerd
  kubeforge.cluster.cri_socket:
    preferred_runtime: cri-dockerd

- name: A runtime on a socket of its own
  kubeforge.cluster.cri_socket:
    extra_candidates:
      - unix:///run/k3s/containerd/containerd.sock
"""

RETURN = r"""
cri_socket:
  description: The one endpoint kubeadm (C(nodeRegistration.criSocket)), kubelet (C(containerRuntimeEndpoint)) and crictl should use.
  returned: success
  type: str
  sample: unix:///run/containerd/containerd.sock
selected_reason:
  description: Why RV(cri_socket) was chosen (the only CRI endpoint, the preferred one, the one of O(preferred_runtime)).
  returned: success
  type: str
  sample: the only CRI endpoint on this node (6 sockets checked)
endpoints:
  description:
    - One entry per candidate, in the order checked. Also returned when the module fails, to show what was found.
  returned: always
  type: list
  elements: dict
  contains:
    endpoint:
      description: The candidate as a C(unix://) URL.
      type: str
      sample: unix:///run/containerd/containerd.sock
    path:
      description: The socket's file system path.
      type: str
      sample: /run/containerd/containerd.sock
    exists:
      description: Whether a file exists at RV(endpoints[].path).
      type: bool
    listening:
      description: Whether a connection to the socket succeeds (a stale socket file left by a stopped daemon is not listening).
      type: bool
    cri:
      description:
        - V(true) when the runtime answers the CRI RuntimeService v1, V(false) when it does not (missing, stale,
          not gRPC, CRI plugin disabled, only v1alpha2), V(null) when it could not be decided or O(probe=false).
      type: bool
    cri_api:
      description: The CRI API version that answered, V(v1) or V(v1alpha2); V(null) when none did.
      type: str
      sample: v1
    runtime:
      description:
        - The runtime behind the socket, V(containerd), V(crio), V(cri-dockerd), V(docker) (the Docker Engine
          API, not CRI) or another CRI runtime name; V(null) when unknown.
      type: str
      sample: containerd
    runtime_version:
      description: The runtime's version as it reports it; V(null) when unknown.
      type: str
      sample: 1.7.24~ds1
    reason:
      description:
        - Why the endpoint is or is not usable, and which evidence decided (gRPC probe, crictl); when the peer
          misbehaved, what it did (for example how much it sent before the time ran out).
      type: str
      sample: "containerd 1.6.20~ds1 answers its own API but not the CRI: runtime.v1.RuntimeService/Version -> UNIMPLEMENTED (12):
        unknown service runtime.v1.RuntimeService; its plugin list has no cri plugin (disabled_plugins in its config.toml, as Docker ships it)
        (gRPC probe)"
    alias_of:
      description: For a second spelling of an already checked socket (same file), that first endpoint; else V(null).
      type: str
      sample: unix:///run/containerd/containerd.sock
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._cri_socket import (
    KNOWN_CRI_ENDPOINTS,
    RUNTIME_NAMES,
    CriSocketError,
    detect,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, require_number

MAX_TIMEOUT = 60.0


def argument_spec():
    return dict(
        candidates=dict(type="list", elements="str", default=list(KNOWN_CRI_ENDPOINTS)),
        extra_candidates=dict(type="list", elements="str", default=[]),
        preferred=dict(type="str", default=""),
        preferred_runtime=dict(type="str", choices=list(RUNTIME_NAMES)),
        probe=dict(type="bool", default=True),
        timeout=dict(type="float", default=2.0),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        require_number("timeout", params["timeout"], minimum=0.01, maximum=MAX_TIMEOUT)
    except InputError as exc:
        module.fail_json(msg="%s seconds" % exc, endpoints=[])
    crictl = module.get_bin_path("crictl") if params["probe"] else None

    def run_command(argv):
        return module.run_command(argv, environ_update=dict(LANGUAGE="C", LC_ALL="C"))

    try:
        endpoints, cri_socket, selected_reason = detect(
            params["candidates"], params["extra_candidates"], params["preferred"], params["preferred_runtime"],
            params["probe"], params["timeout"], crictl=crictl, run_command=run_command)
    except InputError as exc:
        module.fail_json(msg=str(exc), endpoints=[])
    except CriSocketError as exc:
        module.fail_json(msg=str(exc), endpoints=exc.endpoints)
    module.exit_json(changed=False, cri_socket=cri_socket, selected_reason=selected_reason, endpoints=endpoints)


if __name__ == "__main__":
    main()
