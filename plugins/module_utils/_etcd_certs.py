# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of ``kubeforge.cluster.etcd_certs``: a node's etcd CA, certificates and keys as one atomic generation.

All files live in ``<dir>/.generations/current.<id>/`` and are reached through the symlink ``<dir>/current``,
replaced with one rename, so etcd (which reads its certificate and key again for every new TLS connection) never
pairs a new certificate with an old key. Before anything is written every certificate must parse, belong to its
key and be signed by the CA given, so a wrong pair cannot be installed at all.
"""

from __future__ import annotations

import os
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_store as store
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, require_str, safe_name
from ansible_collections.kubeforge.cluster.plugins.module_utils._x509 import X509Error, load_certificates, load_private_key

LINK = "current"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _pem(text):
    return text if text.endswith("\n") else text + "\n"


def desired_files(params):
    """{filename: (bytes, mode)} for the CA and every certificate, after checking each pair; plus a summary."""
    ca_text = require_str("ca", params["ca"], multiline=True)
    try:
        ca = load_certificates(ca_text, "ca")[0]
    except X509Error as exc:
        raise InputError("ca", str(exc)) from None
    if not ca.is_ca:
        raise InputError("ca", "the certificate %s is not a CA certificate" % ",".join("%s=%s" % p for p in ca.subject))
    files = {"ca.pem": (_pem(ca_text).encode(), 0o644)}
    summary = {"ca.pem": describe("ca.pem", ca)}
    for index, item in enumerate(params["certificates"]):
        where = "certificates[%d]" % index
        name = safe_name(where + ".name", item["name"], "certificate name", _NAME_RE, max_length=100)
        if name == "ca" or "%s.pem" % name in files:
            raise InputError(where + ".name", "%r is %s" % (name, "reserved for the CA" if name == "ca" else "used twice"))
        try:
            cert = load_certificates(require_str(where + ".cert", item["cert"], multiline=True), where + ".cert")[0]
            key = load_private_key(require_str(where + ".key", item["key"], multiline=True), where + ".key")
        except X509Error as exc:
            raise InputError(where, str(exc)) from None
        if key.public_key != cert.public_key:
            raise InputError(where + ".key", "is not the key of the certificate %s (CN=%s)" % (name, cert.common_name))
        if not cert.signed_by(ca):
            raise InputError(where + ".cert", "%s (CN=%s) is not signed by the CA given in ca" % (name, cert.common_name))
        files["%s.pem" % name] = (_pem(item["cert"]).encode(), 0o644)
        files["%s-key.pem" % name] = (_pem(item["key"]).encode(), 0o600)
        summary["%s.pem" % name] = describe("%s.pem" % name, cert)
        summary["%s-key.pem" % name] = "the private key of %s.pem (0600)" % name
    return files, summary


def current_files(directory, names, owner, group):
    """What the current generation holds: {filename: bytes or None} and whether any file has the wrong mode/owner
    or the generation holds files not asked for."""
    found = store.read_generation(directory, LINK, names)
    link = os.path.join(directory, LINK)
    stale = False
    if os.path.isdir(link):
        stale = set(os.listdir(link)) != set(names)
        for filename, (_data, mode) in names.items():
            path = os.path.join(link, filename)
            if found[filename] is not None:
                info = os.stat(path)
                if info.st_mode & 0o7777 != mode or (owner is not None and info.st_uid != owner) or (group is not None and info.st_gid != group):
                    stale = True
    return found, stale


def describe(filename, cert):
    """One line about a certificate for the diff: never key material."""
    if filename == "ca.pem":
        return "CA %s, valid until %s, sha256 %s" % (",".join("%s=%s" % p for p in cert.subject), cert.not_after.strftime("%Y-%m-%d"),
                                                     cert.fingerprint[:16])
    return "CN=%s, SANs [%s], %s, valid until %s, sha256 %s" % (
        cert.common_name, ", ".join(cert.sans), "/".join(cert.extended_key_usages) or "no usages",
        cert.not_after.strftime("%Y-%m-%d"), cert.fingerprint[:16])


def summarise_current(found):
    lines = {}
    for filename, data in found.items():
        if data is None:
            continue
        if filename.endswith("-key.pem"):
            lines[filename] = "the private key of %s (0600)" % filename.replace("-key.pem", ".pem")
            continue
        try:
            lines[filename] = describe(filename, load_certificates(data, filename)[0])
        except X509Error as exc:
            lines[filename] = "unreadable: %s" % exc
    return lines


def render(lines):
    return "".join("%s: %s\n" % (name, lines[name]) for name in sorted(lines))


def ensure(params, check_mode, owner=None, group=None):
    directory = absolute_path("dir", params["dir"])
    wanted, summary = desired_files(params)
    found, stale = current_files(directory, wanted, owner, group)
    changed_files = sorted(name for name, (data, _mode) in wanted.items() if found[name] != data)
    link = os.path.join(directory, LINK)
    result = {
        "changed": bool(changed_files) or stale,
        "changed_files": changed_files,
        "ca_changed": "ca.pem" in changed_files,
        "dir": link,
        "files": {"ca": os.path.join(link, "ca.pem")},
    }
    for item in params["certificates"]:
        result["files"][item["name"]] = {"cert": os.path.join(link, "%s.pem" % item["name"]),
                                         "key": os.path.join(link, "%s-key.pem" % item["name"])}
    if result["changed"]:
        result["diff"] = {"before_header": "%s (current)" % link, "after_header": "%s (requested)" % link,
                          "before": render(summarise_current(found)), "after": render(summary)}
    if result["changed"] and not check_mode:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        store.write_generation(directory, LINK, wanted, owner=owner, group=group, dir_mode=0o700)
    return result
