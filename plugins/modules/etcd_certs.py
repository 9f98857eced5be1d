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
  - With O(src), the action plugin reads the CA and each certificate and key from a directory on the controller
    written by M(kubeforge.cluster.cfssl_cert); the keys are passed to the node only and never logged.
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
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
  src:
    description:
      - A PKI directory on the controller kept by M(kubeforge.cluster.cfssl_cert). The CA is read from
        O(src)C(/ca/cert.pem) and each certificate from O(src)C(/<certificates[].src>/cert.pem) and C(key.pem).
      - Without it, O(ca) and the C(cert) and C(key) of each certificate are given as text.
    type: path
  ca:
    description: The CA certificate (PEM text). Required without O(src).
    type: str
  certificates:
    description:
      - Certificates with their keys, each C(name) and either C(src) (with O(src)) or C(cert) (PEM) and C(key)
        (PEM; never logged).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File name stem, letters, digits, C(.), C(_) and C(-).
        type: str
        required: true
      src:
        description: The certificate's name in O(src) (handled by the action plugin).
        type: str
      cert:
        description: The certificate (PEM text).
        type: str
      key:
        description: Its private key (PEM text).
        type: str
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
    src: /srv/pki/etcd
    certificates:
      - name: server
        src: "{{ inventory_hostname }}-server"
      - name: peer
        src: "{{ inventory_hostname }}-peer"
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
        src=dict(type="path"),
        ca=dict(type="str"),
        certificates=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            src=dict(type="str"),
            cert=dict(type="str"),
            key=dict(type="str", no_log=True),
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
