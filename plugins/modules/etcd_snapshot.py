#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_snapshot
short_description: Save an etcd snapshot, or restore one onto a member in two safe steps
version_added: 0.1.0
description:
  - B(saved) takes C(etcdctl snapshot save) from O(endpoint) into O(path) (through a partial file), checks it with
    C(snapshot status) and returns its sha256, revision and key count. Always changes (a new snapshot).
  - B(staged) (etcd may run) checks the snapshot at O(path) against O(sha256) and with C(snapshot status) (etcd's
    own hash), then restores it into O(data_dir)C(.restore) as member O(name) of a new cluster
    (O(initial_cluster), O(initial_cluster_token)).
  - B(restored) (etcd stopped) moves O(data_dir) aside to O(data_dir)C(.before-restore-TIME) and the staged
    directory into its place (mode 0700, owner O(owner)).
  - A marker file records the snapshot and token a directory was made from, so repeating a step changes nothing.
  - Uses C(etcdutl) (etcd 3.5) when found, else C(etcdctl) (etcd 3.4).
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - B(staged) still verifies the snapshot; nothing is written.
  diff_mode:
    support: none
options:
  state:
    description: The step.
    type: str
    choices: [saved, staged, restored]
    required: true
  path:
    description: The snapshot file on this host (written by B(saved), read by B(staged)).
    type: path
    required: true
  endpoint:
    description: Client URL of the member to snapshot (B(saved)); default the first of O(endpoints).
    type: str
  sha256:
    description: The snapshot's expected sha256 (B(staged), B(restored)).
    type: str
  data_dir:
    description: The member's data directory (B(staged), B(restored)).
    type: path
  name:
    description: The member's name (B(staged), B(restored)).
    type: str
  initial_cluster:
    description: C(NAME=PEER_URL,...) of every member of the restored cluster (B(staged)).
    type: str
  initial_cluster_token:
    description: The token of the restored cluster; use a new one, so members of the old cluster cannot talk to it.
    type: str
  peer_urls:
    description: This member's peer URLs (B(staged)).
    type: list
    elements: str
    default: []
  owner:
    description: Owner (user and group of that name) of the restored data directory (B(restored)).
    type: str
    default: etcd
  service:
    description: The member's systemd unit, which must be stopped for B(restored).
    type: str
    default: etcd
  etcdutl_path:
    description: The etcdutl binary; when not found, etcdctl is used for C(snapshot status) and C(snapshot restore).
    type: str
    default: etcdutl
  endpoints:
    description: Client URLs of the cluster (B(saved)).
    type: list
    elements: str
    default: []
  ca_file:
    description: The etcd CA certificate (B(saved)).
    type: path
  cert_file:
    description: A client certificate of the etcd CA (B(saved)).
    type: path
  key_file:
    description: The key of O(cert_file) (B(saved)).
    type: path
  etcdctl_path:
    description: The etcdctl binary.
    type: str
    default: etcdctl
  command_timeout:
    description: Seconds C(etcdctl snapshot save) may take.
    type: int
    default: 60
requirements:
  - etcdctl (etcd-client) on the host; etcdutl (etcd-server 3.5) where it exists
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Take a snapshot on this member
  kubeforge.cluster.etcd_snapshot:
    state: saved
    path: /var/lib/etcd/backup/snapshot.db
    endpoints: ["https://{{ etcd_address }}:2379"]
    ca_file: /etc/etcd/pki/current/ca.pem
    cert_file: /etc/etcd/pki/current/admin.pem
    key_file: /etc/etcd/pki/current/admin-key.pem
  register: snapshot
"""

RETURN = r"""
sha256:
  description: The snapshot's sha256 (B(saved)).
  returned: when O(state=saved) and not in check mode
  type: str
snapshot:
  description: C(hash), C(revision), C(total_keys), C(total_size) from C(snapshot status).
  returned: when O(state) is saved or staged
  type: dict
previous_data_dir:
  description: Where the replaced data directory was moved (B(restored)).
  returned: when O(state=restored)
  type: str
"""

import grp
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_snapshot import SnapshotError, SnapshotTool, save, stage, swap
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import C_ENV, Etcdctl, EtcdctlError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, safe_name

REQUIRED = {"saved": ("endpoints", "ca_file", "cert_file", "key_file"),
            "staged": ("sha256", "data_dir", "name", "initial_cluster", "initial_cluster_token", "peer_urls"),
            "restored": ("sha256", "data_dir", "name", "initial_cluster_token")}


def find(module, name):
    if not name:
        return None
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    return module.get_bin_path(name)


def main():
    module = AnsibleModule(argument_spec=dict(
        state=dict(type="str", required=True, choices=["saved", "staged", "restored"]),
        path=dict(type="path", required=True),
        endpoint=dict(type="str"),
        sha256=dict(type="str"),
        data_dir=dict(type="path"),
        name=dict(type="str"),
        initial_cluster=dict(type="str"),
        initial_cluster_token=dict(type="str", no_log=False),
        peer_urls=dict(type="list", elements="str", default=[]),
        owner=dict(type="str", default="etcd"),
        service=dict(type="str", default="etcd"),
        etcdutl_path=dict(type="str", default="etcdutl"),
        endpoints=dict(type="list", elements="str", default=[]),
        ca_file=dict(type="path"),
        cert_file=dict(type="path"),
        key_file=dict(type="path"),
        etcdctl_path=dict(type="str", default="etcdctl"),
        command_timeout=dict(type="int", default=60),
    ), supports_check_mode=True)
    p = module.params
    missing = [option for option in REQUIRED[p["state"]] if not p[option]]
    if missing:
        module.fail_json(msg="state=%s needs %s" % (p["state"], ", ".join(missing)))
    try:
        for option in ("path", "data_dir", "ca_file", "cert_file", "key_file"):
            if p[option] is not None:
                absolute_path(option, p[option])
        if p["name"] is not None:
            safe_name("name", p["name"], "member name")
        if p["sha256"] is not None and not re.match(r"^[0-9a-f]{64}$", p["sha256"]):
            raise InputError("sha256", "must be 64 lower-case hex digits, got %r" % p["sha256"])
    except InputError as exc:
        module.fail_json(msg=str(exc))

    def run(argv):
        return module.run_command(argv, environ_update=C_ENV)
    etcdctl_binary = find(module, p["etcdctl_path"])
    try:
        tool = SnapshotTool(run, etcdutl=find(module, p["etcdutl_path"]), etcdctl=etcdctl_binary)
        if p["state"] == "saved":
            if not etcdctl_binary:
                module.fail_json(msg="etcdctl_path: %s was not found on this host" % p["etcdctl_path"])
            etcdctl = Etcdctl(etcdctl_binary, run, p["endpoints"], p["ca_file"], p["cert_file"], p["key_file"],
                              command_timeout=p["command_timeout"])
            result = save(etcdctl, tool, p["path"], p["endpoint"] or p["endpoints"][0], module.check_mode)
        elif p["state"] == "staged":
            result = stage(tool, p, module.check_mode)
        else:
            try:
                user = pwd.getpwnam(p["owner"])
                group = grp.getgrnam(p["owner"]).gr_gid
            except KeyError:
                module.fail_json(msg="owner: no user and group %r on this host" % p["owner"])
            rc, _out, _err = module.run_command([module.get_bin_path("systemctl", required=True), "is-active", "--quiet", p["service"]])

            def chown(top):
                for root, dirs, files in os.walk(top):
                    for entry in [root] + [os.path.join(root, d) for d in dirs] + [os.path.join(root, f) for f in files]:
                        os.lchown(entry, user.pw_uid, group)
            result = swap(p, rc == 0, chown, module.check_mode)
    except (SnapshotError, EtcdctlError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="etcd_snapshot state=%s: %s" % (p["state"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
