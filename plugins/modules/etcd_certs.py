#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_certs
short_description: Install an etcd CA, certificates and keys on a node as one atomic set
version_added: 0.1.0
description:
  - Writes the CA as C(ca.pem) and each certificate as C(NAME.pem) with its key C(NAME-key.pem) (0600) into a new
    generation directory under O(dir)C(/.generations/) and then switches the symlink O(dir)C(/current) to it with one
    rename. Readers (etcd, kube-apiserver, etcdctl) open O(dir)C(/current/NAME.pem), so they see either every old
    file or every new one, never a certificate with the key of another generation. The previous generation is
    kept; older ones are removed.
  - Before anything is written every certificate must parse, match its key and be signed by O(ca); otherwise the
    task fails naming the certificate.
  - Nothing is rewritten when every file already has the same content, mode and owner.
  - etcd 3.2 and later read their certificate and key files again for every new TLS connection, so replaced leaf
    certificates take effect without a restart; a changed CA does not (RV(restart_required)).
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Each file as subject, SANs, usages, expiry and fingerprint; keys only as "the private key of ...".
options:
  dir:
    description: The directory of the set; the files are reached as O(dir)C(/current/...).
    type: path
    required: true
  ca:
    description: The CA certificate (PEM text).
    type: str
    required: true
  certificates:
    description: Certificates with their keys, each C(name), C(cert) (PEM) and C(key) (PEM; never logged).
    type: list
    elements: dict
    required: true
    options:
      name:
        description: File name stem, letters, digits, C(.), C(_) and C(-).
        type: str
        required: true
      cert:
        description: The certificate (PEM text).
        type: str
        required: true
      key:
        description: Its private key (PEM text).
        type: str
        required: true
        no_log: true
  owner:
    description: Owner of the generation directories and files (for etcd, the C(etcd) user so it can read its keys).
    type: str
    default: root
  group:
    description: Group of the generation directories and files.
    type: str
    default: root
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Install this member's certificates from the controller's PKI directory
  kubeforge.cluster.etcd_certs:
    dir: /etc/etcd/pki
    ca: "{{ lookup('ansible.builtin.file', pki + '/ca/cert.pem') }}"
    certificates:
      - name: server
        cert: "{{ lookup('ansible.builtin.file', pki + '/' + inventory_hostname + '-server/cert.pem') }}"
        key: "{{ lookup('ansible.builtin.file', pki + '/' + inventory_hostname + '-server/key.pem') }}"
    owner: etcd
    group: etcd
"""

RETURN = r"""
dir:
  description: The directory the files are read from (O(dir)C(/current)).
  returned: always
  type: str
  sample: /etc/etcd/pki/current
files:
  description: C(ca) (path) and per certificate name C(cert) and C(key) paths.
  returned: always
  type: dict
  sample: {ca: /etc/etcd/pki/current/ca.pem, server: {cert: /etc/etcd/pki/current/server.pem, key: /etc/etcd/pki/current/server-key.pem}}
changed_files:
  description: The files whose content changed (or would).
  returned: always
  type: list
  elements: str
ca_changed:
  description: Whether the CA certificate changed.
  returned: always
  type: bool
restart_required:
  description: True when the CA changed; etcd reads its trusted CA only at start, but leaf certificates on every connection.
  returned: always
  type: bool
"""

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl_store import StoreError
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_certs import ensure
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError


def main():
    module = AnsibleModule(argument_spec=dict(
        dir=dict(type="path", required=True),
        ca=dict(type="str", required=True),
        certificates=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            cert=dict(type="str", required=True),
            key=dict(type="str", required=True, no_log=True),
        )),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
    ), supports_check_mode=True)
    try:
        uid = pwd.getpwnam(module.params["owner"]).pw_uid
    except KeyError:
        module.fail_json(msg="owner: no user %r on this host" % module.params["owner"])
    try:
        gid = grp.getgrnam(module.params["group"]).gr_gid
    except KeyError:
        module.fail_json(msg="group: no group %r on this host" % module.params["group"])
    try:
        result = ensure(module.params, module.check_mode, uid, gid)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    except (StoreError, OSError) as exc:
        module.fail_json(msg="cannot install the certificates under %s: %s" % (module.params["dir"], exc))
    diff = result.pop("diff", None)
    if module._diff and diff:
        result["diff"] = diff
    result["restart_required"] = result["ca_changed"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
