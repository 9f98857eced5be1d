#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cfssl_cert
short_description: Keep a CA and its certificates with cfssl, re-issuing only what differs
version_added: 0.1.0
description:
  - Ensures a certificate authority (self-signed, or an intermediate signed by a CA the operator provides) and leaf
    certificates described by CSR parameters (CN, hosts, names, key type, expiry, usage profile), using the real
    C(cfssl) binary. Run it where the CA lives, for example on the controller (C(delegate_to) C(localhost)).
  - "B(Idempotent by inspection.) Each existing certificate is read (pure Python, no library needed) and compared
    in this order; any difference re-issues it and is listed in RV(reasons), for example C(node1-peer: SAN
    10.0.0.4 missing) or C(ca: expires in 12 days (renewal window 30 days)). Forced; certificate or key missing;
    unreadable; key does not match the certificate; key type; CN and subject names; SANs (DNS and IP); usages of
    the profile; issuer and the CA's signature (a leaf of a replaced CA is re-issued); expired or inside
    O(renew_before); lifetime different from the expiry asked for."
  - B(Keys.) A re-issue keeps the existing key (its stored CSR is signed again) unless O(rotate_keys) is set or
    the key is the problem (missing, unreadable, other type). Keys are written 0600 and never returned or shown
    in a diff. The CA key is never replaced by the module; a missing or mismatched CA key is an error that says
    how to recover; a CA renewal (expiry, subject) keeps the key, so the certificates it signed stay valid.
  - B(Atomic pairs.) Every certificate lives in O(dir)C(/<name>/) (C(cert.pem), C(key.pem), C(csr.pem)), a
    symlink to a generation directory that is written completely before the link is switched with one
    C(rename), so no reader ever sees a certificate with the key of another generation. The previous generation
    is kept, older ones are removed.
  - Runs are serialised by a lock on O(dir), so one task per host delegated to the CA host is safe.
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Every check runs and RV(reasons) says what a real run would re-issue; cfssl is not called.
  diff_mode:
    support: full
    details:
      - The parameters of each certificate that changes (CN, names, SANs, usages, key type, issuer, validity),
        never key material.
options:
  dir:
    description:
      - The PKI directory on the host the module runs on (created 0700). The CA is O(dir)C(/ca/cert.pem) and
        O(dir)C(/ca/key.pem); certificate C(NAME) is O(dir)C(/NAME/cert.pem) and O(dir)C(/NAME/key.pem).
    type: path
    required: true
  ca:
    description:
      - The CA. C(cn) is required; C(names) a dict or list of dicts of C(C), C(ST), C(L), C(O), C(OU);
        C(key) C({algo, size}) (default O(key)); C(expiry) in hours, cfssl style (default C(87600h), ten years).
      - C(signed_by) C({cert, key}) (paths on the same host) makes the CA an intermediate of that root instead of
        self-signed. The root must be a CA certificate with its key.
    type: dict
    required: true
  certificates:
    description:
      - Leaf certificates to ensure.
      - C(name) (required) is the directory name, letters, digits, C(.), C(_), C(-); C(ca) is reserved.
      - C(cn) (default the name); C(hosts) a list of DNS names (a leading C(*.) wildcard allowed) and IP
        addresses that become the SANs, exactly; C(profile) C(server), C(client) or C(peer) (server and client
        auth, what etcd peers need; default); C(names), C(key) and C(expiry) as for O(ca) (default O(key),
        O(expiry)).
    type: list
    elements: dict
    default: []
  key:
    description: Default key type of every certificate, C(algo) C(rsa) (2048, 3072, 4096) or C(ecdsa) (256, 384, 521).
    type: dict
    default: {algo: ecdsa, size: 256}
  expiry:
    description: Default lifetime of leaf certificates, in hours (C(8760h) is one year).
    type: str
    default: 8760h
  renew_before:
    description: Re-issue certificates (and renew the CA) whose remaining validity is shorter than this, in hours.
    type: str
    default: 720h
  rotate_keys:
    description: Make a new key whenever a certificate is re-issued (with O(force), rotates every key now).
    type: bool
    default: false
  force:
    description: Re-issue the CA and every certificate although nothing differs.
    type: bool
    default: false
  cfssl_path:
    description:
      - The cfssl binary, a name looked up in C(PATH) or an absolute path. Debian and Ubuntu ship it in
        C(golang-cfssl) (1.2 in bookworm, 1.6 in trixie; both work).
      - C(cfssljson) is not needed; the module reads cfssl's JSON output itself, so a key is written once, into
        its final 0600 file.
    type: str
    default: cfssl
requirements:
  - cfssl 1.2 or later on the host the module runs on
seealso:
  - name: cfssl
    description: CloudFlare's PKI toolkit.
    link: https://github.com/cloudflare/cfssl
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Ensure the etcd CA and this member's certificates on the controller
  kubeforge.cluster.cfssl_cert:
    dir: /srv/pki/etcd
    ca:
      cn: etcd-ca
      names: {O: kubeforge, OU: etcd}
    certificates:
      - name: "{{ inventory_hostname }}-server"
        cn: "{{ inventory_hostname }}"
        profile: server
        hosts: ["{{ inventory_hostname }}", "{{ ansible_host }}", 127.0.0.1, localhost]
      - name: "{{ inventory_hostname }}-peer"
        cn: "{{ inventory_hostname }}"
        profile: peer
        hosts: ["{{ inventory_hostname }}", "{{ ansible_host }}"]
  delegate_to: localhost
  register: etcd_member_pki

- name: An intermediate CA under the company root, RSA keys, 90-day certificates renewed after 60 days
  kubeforge.cluster.cfssl_cert:
    dir: /srv/pki/etcd
    key: {algo: rsa, size: 2048}
    expiry: 2160h
    renew_before: 720h
    ca:
      cn: etcd intermediate CA
      signed_by: {cert: /srv/pki/root/ca.pem, key: /srv/pki/root/ca-key.pem}
    certificates:
      - name: kube-apiserver-etcd-client
        profile: client
        names: {O: system:masters}
  delegate_to: localhost
"""

RETURN = r"""
reasons:
  description: Why anything was (or in check mode would be) issued, each prefixed by the certificate's name.
  returned: always
  type: list
  elements: str
  sample: ["node1-server: SAN 10.0.0.4 missing", "ca: expires in 12 days (renewal window 30 days)"]
ca:
  description: The CA; C(cert) and C(key) paths, C(changed), C(reasons), C(new_key) and C(info) (subject, issuer,
    sans, serial, not_before, not_after, key, usages, is_ca, sha256_fingerprint; null before it exists).
  returned: always
  type: dict
certificates:
  description: Per certificate name, C(cert), C(key) and C(csr) paths, C(changed), C(reasons), C(new_key) and C(info)
    as for RV(ca).
  returned: always
  type: dict
  sample: {node1-peer: {cert: /srv/pki/etcd/node1-peer/cert.pem, key: /srv/pki/etcd/node1-peer/key.pem, changed: false,
           reasons: [], new_key: false}}
dir:
  description: The PKI directory.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import Cfssl
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl_cert import CertError, ensure
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

C_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def argument_spec():
    return dict(
        dir=dict(type="path", required=True),
        ca=dict(type="dict", required=True),
        certificates=dict(type="list", elements="dict", default=[]),
        key=dict(type="dict", default={"algo": "ecdsa", "size": 256}, no_log=False),
        expiry=dict(type="str", default="8760h"),
        renew_before=dict(type="str", default="720h"),
        rotate_keys=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        cfssl_path=dict(type="str", default="cfssl"),
    )


def find_cfssl(module):
    name = module.params["cfssl_path"]
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return module.get_bin_path(name) if name.strip() else None


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    binary = find_cfssl(module)
    if not binary:
        module.fail_json(msg="cfssl_path: cfssl (%s) was not found on this host; install it (Debian/Ubuntu package "
                             "golang-cfssl) or set cfssl_path to the binary" % module.params["cfssl_path"])
    cfssl = Cfssl(binary, lambda argv: module.run_command(argv, environ_update=C_ENV), module.params["dir"])
    try:
        result = ensure(module.params, cfssl, check_mode=module.check_mode)
    except (InputError, CertError) as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
