# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How the etcd modules reach the cluster: etcdctl (API v3) over TLS with a client certificate.
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - Client URLs of the cluster's members (C(https://ADDRESS:2379)). Any member that answers is enough to read
        the member list; every member listed there is then asked for its status and health.
    type: list
    elements: str
    required: true
  ca_file:
    description: The etcd CA certificate on the host the module runs on.
    type: path
    required: true
  cert_file:
    description: A client certificate of the etcd CA (client auth usage).
    type: path
    required: true
  key_file:
    description: The key of O(cert_file).
    type: path
    required: true
  etcdctl_path:
    description: The etcdctl binary (API v3; etcd 3.4 or later), a name looked up in C(PATH) or an absolute path.
    type: str
    default: etcdctl
  command_timeout:
    description: Seconds each etcdctl command may take (the dial timeout is 3 s).
    type: int
    default: 10
requirements:
  - etcdctl 3.4 or later on the host the module runs on
"""
