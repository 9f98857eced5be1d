# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of ``kubeforge.cluster.cfssl_cert``: a CA and leaf certificates kept as asked, re-issued only for a reason.

What exists is inspected in a fixed order (forced, missing, unparsable, key does not match, key type, subject,
SANs, usages, issuer and signature, validity) and every difference becomes a human-readable reason. A key is kept
across re-issues (the stored CSR is signed again) unless rotation is asked for or the key itself is the problem.
The CA is never replaced behind the operator's back: a missing or mismatched CA key is an error, a CA renewal keeps
its key (so the certificates it signed stay valid).
"""

from __future__ import annotations

import datetime
import os

from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_store as store
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import INTERMEDIATE, PROFILE_EKUS, CfsslError
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl_spec import CA_NAME, normalize
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import directory_lock
from ansible_collections.kubeforge.cluster.plugins.module_utils._x509 import X509Error, load_certificates, load_private_key, load_request

FILES = ("cert.pem", "key.pem", "csr.pem")


class CertError(Exception):
    """A state the module must not repair on its own (or a cfssl failure); the message names the file and the fix."""


# --------------------------------------------------------------------------------------------- inspection


def subject_names(pairs):
    """{attribute: sorted values} of a subject without the CN, to compare with the ``names`` of a spec."""
    found = {}
    for attribute, value in pairs:
        if attribute != "CN":
            found.setdefault(attribute, []).append(value)
    return {key: sorted(values) for key, values in found.items()}


def spec_names(names):
    wanted = {}
    for entry in names:
        for key, value in entry.items():
            wanted.setdefault(key, []).append(value)
    return {key: sorted(values) for key, values in wanted.items()}


def _names_text(names):
    return ",".join("%s=%s" % (key, value) for key in sorted(names) for value in names[key]) or "(none)"


def _days(delta):
    return int(delta.total_seconds() // 86400)


class Existing:
    """What is on disk for one name: the parsed certificate, key and request, or why they cannot be used."""

    def __init__(self, files):
        self.files = files
        self.cert = self.key = self.request = None
        self.problems = []
        if files["cert.pem"] is not None:
            try:
                self.cert = load_certificates(files["cert.pem"])[0]
            except X509Error as exc:
                self.problems.append("certificate unreadable (%s)" % exc)
        if files["key.pem"] is not None:
            try:
                self.key = load_private_key(files["key.pem"])
            except X509Error as exc:
                self.problems.append("key unreadable (%s)" % exc)
        if files.get("csr.pem") is not None:
            try:
                self.request = load_request(files["csr.pem"])
            except X509Error:
                self.request = None

    @property
    def reusable_request(self):
        """The stored CSR when it was made for the stored key (so ``cfssl sign`` keeps the key)."""
        if self.key is not None and self.request is not None and self.request.public_key == self.key.public_key:
            return self.files["csr.pem"]
        return None


def compare(existing, spec, issuer, now, renew_hours):
    """Reasons to re-issue ``spec`` given what exists and the ``issuer`` certificate (None: a new CA is pending)."""
    if existing.files["cert.pem"] is None:
        return ["certificate missing"]
    if existing.files["key.pem"] is None:
        return ["key missing"]
    if existing.problems:
        return list(existing.problems)
    if existing.key.public_key != existing.cert.public_key:
        return ["key does not match the certificate"]
    return compare_certificate(existing.cert, spec, issuer, now, renew_hours)


def compare_certificate(cert, spec, issuer, now, renew_hours):
    """Differences between a parsed certificate and ``spec`` (key type, subject, SANs, usages, issuer, validity)."""
    reasons = []
    wanted_key = "%s %d" % (spec["key"]["algo"], spec["key"]["size"])
    if cert.public_key.describe() != wanted_key:
        reasons.append("key is %s, want %s" % (cert.public_key.describe(), wanted_key))
    if cert.common_name != spec["cn"]:
        reasons.append("CN is %r, want %r" % (cert.common_name, spec["cn"]))
    have, want = subject_names(cert.subject), spec_names(spec["names"])
    if have != want:
        reasons.append("subject names are %s, want %s" % (_names_text(have), _names_text(want)))
    if spec["is_ca"]:
        if not cert.is_ca:
            reasons.append("not a CA certificate (basic constraints)")
    else:
        have_sans = [san.lower() for san in cert.dns_names] + list(cert.ip_addresses)
        reasons.extend("SAN %s missing" % host for host in spec["hosts"] if host not in have_sans)
        reasons.extend("SAN %s unexpected" % host for host in have_sans if host not in spec["hosts"])
        wanted_ekus = PROFILE_EKUS[spec["profile"]]
        if sorted(cert.extended_key_usages) != sorted(wanted_ekus):
            reasons.append("usages are [%s], want [%s] (profile %s)" % (
                ", ".join(cert.extended_key_usages), ", ".join(wanted_ekus), spec["profile"]))
    if issuer is None:
        reasons.append("the CA is new or gets a new subject")
    elif not cert.signed_by(issuer):
        signer = "itself" if issuer is cert else "the CA " + _subject_text(issuer)
        reasons.append("not signed by %s (issuer is %s)" % (signer, _issuer_text(cert)))
    remaining = cert.not_after - now
    if remaining.total_seconds() <= 0:
        reasons.append("expired %d days ago" % -_days(remaining))
    elif remaining.total_seconds() <= renew_hours * 3600:
        reasons.append("expires in %d days (renewal window %d days)" % (_days(remaining), renew_hours // 24))
    lifetime = cert.not_after - cert.not_before
    if abs(lifetime.total_seconds() - spec["hours"] * 3600) > 86400:
        reasons.append("valid for %d days, want %s (%d days)" % (_days(lifetime), spec["expiry"], spec["hours"] // 24))
    return reasons


def _subject_text(cert):
    return ",".join("%s=%s" % pair for pair in cert.subject)


def _issuer_text(cert):
    return ",".join("%s=%s" % pair for pair in cert.issuer)


def needs_new_key(existing, spec, reasons, rotate):
    """Why the re-issue cannot keep the current key (None when it can)."""
    if rotate:
        return "key rotation requested"
    if existing.key is None or existing.cert is None and existing.files["cert.pem"] is not None:
        return "no usable key"
    if existing.key.public_key.describe() != "%s %d" % (spec["key"]["algo"], spec["key"]["size"]):
        return "key type changes"
    if existing.reusable_request is None:
        return "no certificate request for the current key is stored"
    return None


def parameters(spec, issuer_subject):
    """The diff view of what is asked for (never key material)."""
    view = {"cn": spec["cn"], "names": _names_text(spec_names(spec["names"])), "key": "%s %d" % (spec["key"]["algo"], spec["key"]["size"]),
            "expiry": spec["expiry"]}
    if spec["is_ca"]:
        view["issuer"] = issuer_subject or "(self-signed)"
    else:
        view.update(sans=list(spec["hosts"]), usages=PROFILE_EKUS[spec["profile"]], issuer=issuer_subject)
    return view


def current_view(existing, spec):
    cert = existing.cert
    if cert is None:
        return None
    view = {"cn": cert.common_name, "names": _names_text(subject_names(cert.subject)), "key": cert.public_key.describe(),
            "expiry": "%dh" % ((cert.not_after - cert.not_before).total_seconds() // 3600)}
    view["issuer"] = "(self-signed)" if cert.issuer_der == cert.subject_der else _issuer_text(cert)
    if not spec["is_ca"]:
        view.update(sans=cert.sans, usages=cert.extended_key_usages, not_after=cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
    else:
        view["not_after"] = cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    return view


def render(view):
    if view is None:
        return ""
    lines = []
    for key in sorted(view):
        value = view[key]
        lines.append("%s: %s" % (key, "[%s]" % ", ".join(sorted(value)) if isinstance(value, list) else value))
    return "\n".join(lines) + "\n"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def ca_root(spec):
    """The operator's root for an intermediate CA: its certificate (checked to be a CA with a matching key)."""
    signed_by = spec["signed_by"]
    try:
        with open(signed_by["cert"], "rb") as handle:
            root = load_certificates(handle.read(), signed_by["cert"])[0]
        with open(signed_by["key"], "rb") as handle:
            root_key = load_private_key(handle.read(), signed_by["key"])
    except OSError as exc:
        raise CertError("ca.signed_by: cannot read %s: %s" % (exc.filename, exc.strerror)) from None
    except X509Error as exc:
        raise CertError("ca.signed_by: %s" % exc) from None
    if not root.is_ca:
        raise CertError("ca.signed_by.cert %s is not a CA certificate (basic constraints CA:FALSE)" % signed_by["cert"])
    if root_key.public_key != root.public_key:
        raise CertError("ca.signed_by.key %s is not the key of %s" % (signed_by["key"], signed_by["cert"]))
    return root


# --------------------------------------------------------------------------------------------- orchestration


class Signer:
    """Issues into the store with a ``Cfssl`` runner; ``check_mode`` only reports."""

    def __init__(self, spec, cfssl, check_mode, now):
        self.spec, self.cfssl, self.check_mode, self.now = spec, cfssl, check_mode, now
        self.directory = spec["dir"]

    def path(self, name, filename):
        return os.path.join(self.directory, name, filename)

    def _read(self, name):
        try:
            return Existing(store.read_generation(self.directory, name, FILES))
        except store.StoreError as exc:
            raise CertError(str(exc)) from None

    def _write(self, name, cert, key, csr):
        try:
            store.write_generation(self.directory, name, {"cert.pem": (cert.encode(), 0o644), "key.pem": (key.encode(), 0o600),
                                                          "csr.pem": (csr.encode(), 0o644)})
        except (OSError, store.StoreError) as exc:
            raise CertError("cannot write %s under %s: %s" % (name, self.directory, exc)) from None

    def _verify_issued(self, name, spec, cert_pem, issuer):
        """cfssl's result must now satisfy every check, or the run fails before anything is replaced."""
        issued = load_certificates(cert_pem, "the certificate cfssl issued for %s" % name)[0]
        left = compare_certificate(issued, spec, issuer or issued, self.now, 0)
        if left:
            raise CertError("cfssl issued a certificate for %s that still differs from the request: %s" % (name, "; ".join(left)))
        return issued

    def ensure_ca(self):
        spec = self.spec["ca"]
        existing = self._read(CA_NAME)
        root = ca_root(spec) if spec["signed_by"] else None
        where = os.path.join(self.directory, CA_NAME)
        if existing.files["cert.pem"] is None and existing.files["key.pem"] is None:
            reasons = ["CA missing"]
        else:
            if existing.files["key.pem"] is None or existing.key is None or existing.cert is None:
                raise CertError("%s holds %s; restore the CA files from a backup, or remove %s to start a new CA (every "
                                "certificate it signed is then re-issued)" % (where, "; ".join(existing.problems) or
                                                                              "a certificate without its key", where))
            if existing.key.public_key != existing.cert.public_key:
                raise CertError("%s/key.pem is not the key of %s/cert.pem; restore the matching pair or remove %s to start a "
                                "new CA" % (where, where, where))
            wanted = "%s %d" % (spec["key"]["algo"], spec["key"]["size"])
            if existing.cert.public_key.describe() != wanted:
                raise CertError("the CA key is %s but ca.key asks for %s: a new CA key invalidates every certificate it signed. "
                                "Keep ca.key as it is, or remove %s to start a new CA" % (existing.cert.public_key.describe(), wanted, where))
            reasons = (["re-issue forced"] if self.spec["force"] else []) + compare(
                existing, spec, root or existing.cert, self.now, self.spec["renew_hours"])
        result = {"cert": self.path(CA_NAME, "cert.pem"), "key": self.path(CA_NAME, "key.pem"), "changed": bool(reasons),
                  "reasons": reasons, "new_key": existing.cert is None}
        diff = self._diff(CA_NAME, existing, spec, root) if reasons else None
        if reasons and not self.check_mode:
            existing = self._issue_ca(spec, existing, root)
        elif reasons and (existing.cert is None or any(r.startswith(("CN is", "subject names")) for r in reasons)):
            # check mode: the CA's subject will change, so no certificate it signed keeps a valid issuer
            result["info"] = existing.cert.info() if existing.cert is not None else None
            return result, None, diff
        result["info"] = existing.cert.info() if existing.cert is not None else None
        return result, existing.cert, diff

    def _issue_ca(self, spec, existing, root):
        key_path = self.path(CA_NAME, "key.pem")
        try:
            if root is None:
                out = self.cfssl.init_ca(spec, key_path if existing.cert is not None else None)
                key = out.get("key") or existing.files["key.pem"].decode()
            else:
                if existing.cert is None:
                    request = self.cfssl.new_key(spec)
                    key, csr = request["key"], request["csr"]
                else:
                    key, csr = existing.files["key.pem"].decode(), existing.reusable_request
                    if csr is None:
                        raise CertError("%s has no certificate request for its key, so the intermediate CA cannot be signed "
                                        "again with the same key; remove %s to start a new CA" % (key_path, os.path.dirname(key_path)))
                    csr = csr.decode()
                out = self.cfssl.sign(spec["signed_by"]["cert"], spec["signed_by"]["key"], INTERMEDIATE, spec, csr)
                out.setdefault("csr", csr)
        except CfsslError as exc:
            raise CertError(str(exc)) from None
        self._verify_issued(CA_NAME, spec, out["cert"], root)
        self._write(CA_NAME, out["cert"], key, out.get("csr") or existing.files["csr.pem"].decode())
        return self._read(CA_NAME)

    def ensure_certificate(self, spec, ca_cert):
        existing = self._read(spec["name"])
        reasons = (["re-issue forced"] if self.spec["force"] else []) + compare(existing, spec, ca_cert, self.now, self.spec["renew_hours"])
        new_key = needs_new_key(existing, spec, reasons, self.spec["rotate_keys"]) if reasons else None
        result = {"cert": self.path(spec["name"], "cert.pem"), "key": self.path(spec["name"], "key.pem"),
                  "csr": self.path(spec["name"], "csr.pem"), "changed": bool(reasons), "reasons": reasons, "new_key": bool(new_key)}
        if new_key and new_key != "no usable key" and existing.cert is not None:
            result["reasons"] = reasons + ["new key: %s" % new_key]
        diff = self._diff(spec["name"], existing, spec, ca_cert) if reasons else None
        if reasons and not self.check_mode:
            try:
                if new_key:
                    request = self.cfssl.new_key(spec)
                    key, csr = request["key"], request["csr"]
                else:
                    key, csr = existing.files["key.pem"].decode(), existing.reusable_request.decode()
                out = self.cfssl.sign(self.path(CA_NAME, "cert.pem"), self.path(CA_NAME, "key.pem"), spec["profile"], spec, csr)
            except CfsslError as exc:
                raise CertError(str(exc)) from None
            self._verify_issued(spec["name"], spec, out["cert"], ca_cert)
            self._write(spec["name"], out["cert"], key, csr)
            existing = self._read(spec["name"])
        result["info"] = existing.cert.info() if existing.cert is not None else None
        return result, diff

    def _diff(self, name, existing, spec, issuer):
        issuer_text = _subject_text(issuer) if issuer is not None else ("(the new CA)" if not spec["is_ca"] else None)
        return {"before_header": "%s (current certificate)" % name, "after_header": "%s (requested)" % name,
                "before": render(current_view(existing, spec)), "after": render(parameters(spec, issuer_text))}


def ensure(params, cfssl, check_mode=False, now=None):
    """Bring the CA and the certificates of ``params`` (module options) to the requested state."""
    spec = normalize(params)
    directory = spec["dir"]
    signer = Signer(spec, cfssl, check_mode, now or utcnow())
    if not check_mode:
        try:
            store.ensure_directory(directory, 0o700)
        except OSError as exc:
            raise CertError("cannot create the PKI directory %s: %s" % (directory, exc.strerror)) from None
    if os.path.isdir(directory):
        with directory_lock(directory):
            return _ensure_locked(spec, signer)
    return _ensure_locked(spec, signer)


def _ensure_locked(spec, signer):
    ca_result, ca_cert, ca_diff = signer.ensure_ca()
    diffs = [ca_diff] if ca_diff else []
    certificates = {}
    for certificate in spec["certificates"]:
        result, diff = signer.ensure_certificate(certificate, ca_cert)
        certificates[certificate["name"]] = result
        if diff:
            diffs.append(diff)
    reasons = ["ca: %s" % reason for reason in ca_result["reasons"]]
    for name, result in certificates.items():
        reasons.extend("%s: %s" % (name, reason) for reason in result["reasons"])
    return {"changed": bool(reasons), "reasons": reasons, "ca": ca_result, "certificates": certificates, "diff": diffs,
            "dir": spec["dir"]}
