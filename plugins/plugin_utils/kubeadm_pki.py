# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side PKI decisions of kubeadm part 2: the discovery CA pin and which kubelet serving CSRs to approve.

``ca_cert_hash(pem)`` is what ``kubeadm join --discovery-token-ca-cert-hash`` wants: ``sha256:`` and the hex SHA-256
of the CA certificate's DER-encoded SubjectPublicKeyInfo (upstream: ``openssl x509 -pubkey -in ca.crt | openssl
rsa -pubin -outform der | openssl dgst -sha256``).

``kubelet_serving_csrs(csr_list, nodes)`` looks at ``kubectl get csr -o json`` and approves only pending
``kubernetes.io/kubelet-serving`` requests made by a node of the inventory (``system:node:<name>`` in group
``system:nodes``) whose subject is that node and whose requested DNS names and IP addresses all belong to it
(seed 002 approves every pending CSR by hand, which would also sign a certificate for a name an attacker chose).
"""

from __future__ import annotations

import json
import base64
import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - cryptography is a requirement of ansible-core
    x509 = None

SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"


def _need_cryptography():
    if x509 is None:
        raise AnsibleFilterError("the kubeadm PKI filters need the Python package cryptography on the controller (pip install cryptography)")


def ca_cert_hash(pem):
    """``sha256:<hex>`` of the certificate's SubjectPublicKeyInfo; the first certificate of ``pem`` is used."""
    _need_cryptography()
    if not isinstance(pem, (str, bytes)) or not pem:
        raise AnsibleFilterError("ca_cert_hash needs the PEM text of the cluster CA certificate (/etc/kubernetes/pki/ca.crt), got %r" % (pem,))
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise AnsibleFilterError("ca_cert_hash: the text is not a PEM certificate (%s)" % exc) from None
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _pending(item):
    conditions = (item.get("status") or {}).get("conditions") or []
    return not any(c.get("type") in ("Approved", "Denied", "Failed") for c in conditions)


def _judge(item, nodes):
    """None when the CSR may be approved, else the reason it is not."""
    spec = item.get("spec") or {}
    username = spec.get("username") or ""
    node = username[len(NODE_PREFIX):] if username.startswith(NODE_PREFIX) else None
    if node is None or node not in nodes:
        return "requested by %r, not by a node of the inventory" % username
    if "system:nodes" not in (spec.get("groups") or []):
        return "requester %s is not in group system:nodes" % username
    try:
        csr = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
    except ValueError as exc:
        return "the request is not a PEM certificate request (%s)" % exc
    common_names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organisations = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common_names != [username] or organisations != ["system:nodes"]:
        return "subject CN=%s O=%s is not CN=%s O=system:nodes" % (",".join(common_names), ",".join(organisations), username)
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subject alternative names requested"
    allowed = nodes[node]
    names = {n.lower() for n in allowed.get("names") or []} | {node.lower()}
    addresses = set()
    for address in allowed.get("addresses") or []:
        try:
            addresses.add(ipaddress.ip_address(address))
        except ValueError:
            names.add(str(address).lower())  # an inventory ansible_host may be a DNS name
    foreign = [n for n in san.get_values_for_type(x509.DNSName) if n.lower() not in names]
    foreign += [str(a) for a in san.get_values_for_type(x509.IPAddress) if a not in addresses]
    if foreign:
        return "requests names that are not node %s's: %s" % (node, ", ".join(foreign))
    return None


def kubelet_serving_csrs(csr_list, nodes):
    """``{"approve": [csr names], "refused": [{"name", "node", "reason"}]}`` for the pending kubelet serving CSRs.

    ``csr_list``: ``kubectl get csr -o json`` (a dict with ``items``, or a ``List`` holding other kinds too);
    ``nodes``: ``{node name: {"addresses": [IP or DNS name], "names": [extra DNS names]}}`` from the inventory.
    """
    _need_cryptography()
    if isinstance(csr_list, str):
        try:
            csr_list = json.loads(csr_list)
        except ValueError as exc:
            raise AnsibleFilterError("kubelet_serving_csrs: kubectl's output is not JSON (%s)" % exc) from None
    if not isinstance(csr_list, dict) or not isinstance(nodes, dict):
        raise AnsibleFilterError("kubelet_serving_csrs needs kubectl's JSON list and a dict of inventory nodes, got %r and %r"
                                 % (type(csr_list).__name__, type(nodes).__name__))
    approve, refused = [], []
    for item in csr_list.get("items") or []:
        if item.get("kind", "CertificateSigningRequest") != "CertificateSigningRequest" or not _pending(item):
            continue
        if (item.get("spec") or {}).get("signerName") != SERVING_SIGNER:
            continue
        name = (item.get("metadata") or {}).get("name") or ""
        reason = _judge(item, nodes)
        if reason is None:
            approve.append(name)
        else:
            username = (item.get("spec") or {}).get("username") or ""
            refused.append({"name": name, "node": username[len(NODE_PREFIX):] if username.startswith(NODE_PREFIX) else "",
                            "reason": reason})
    return {"approve": sorted(approve), "refused": refused}
