# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``cfssl`` command line as ``cfssl_cert`` uses it: CSR and signing-config JSON, argv lists, JSON output.

Works with cfssl 1.2 (Debian bookworm) and 1.6 (trixie): only subcommands and flags both have are used
(``gencert -initca [-ca-key]``, ``genkey [-initca]``, ``sign -hostname ... CSR SUBJECT``). Every leaf is signed
from a stored CSR, a new one only when a new key is made, so a re-issue keeps the key unless told otherwise. cfssl prints
``{"cert", "key", "csr"}`` as JSON on stdout; it is parsed here instead of piping it through ``cfssljson``, so the
private key reaches the disk once, in its final 0600 file, and never appears in an error message (only stderr is
quoted on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

# Signing profiles: extended key usages per certificate kind ("peer" = server + client, what etcd peers need).
PROFILES = {
    "server": ["signing", "key encipherment", "server auth"],
    "client": ["signing", "key encipherment", "client auth"],
    "peer": ["signing", "key encipherment", "server auth", "client auth"],
}
PROFILE_EKUS = {"server": ["server auth"], "client": ["client auth"], "peer": ["server auth", "client auth"]}
INTERMEDIATE = "intermediate"


class CfsslError(Exception):
    """cfssl failed or printed something unexpected; the message quotes its stderr, never stdout."""


def csr_request(spec):
    """The CSR JSON cfssl reads for ``spec`` (a normalised CA or certificate spec of ``_cfssl_cert``).

    It never lists hosts: SANs are always given with ``-hostname`` when signing, so the stored request carries
    none and a later ``cfssl sign`` from it yields exactly the hosts asked for then (also none).
    """
    request = {"CN": spec["cn"], "key": {"algo": spec["key"]["algo"], "size": spec["key"]["size"]},
               "names": [dict(entry) for entry in spec["names"]]}
    if spec.get("is_ca"):
        request["ca"] = {"expiry": spec["expiry"]}
    return request


def subject_request(spec):
    """The SUBJECT file of ``cfssl sign``: the certificate's subject replaces the one of the stored CSR."""
    return {"CN": spec["cn"], "names": [dict(entry) for entry in spec["names"]]}


def signing_config(profile, expiry):
    """A cfssl signing config with one profile (``server``/``client``/``peer``/``intermediate``)."""
    if profile == INTERMEDIATE:
        body = {"expiry": expiry, "usages": ["cert sign", "crl sign"],
                "ca_constraint": {"is_ca": True, "max_path_len": 0, "max_path_len_zero": True}}
    else:
        body = {"expiry": expiry, "usages": PROFILES[profile]}
    return {"signing": {"default": {"expiry": expiry}, "profiles": {profile: body}}}


class Cfssl:
    """Runs cfssl through ``run(argv) -> (rc, stdout, stderr)`` with request files in a private temp directory."""

    def __init__(self, binary, run, workdir):
        self.binary = binary
        self.run = run
        self.workdir = workdir

    def _files(self, **documents):
        """Write each JSON document (or text) into a fresh 0700 directory; returns (dir, {name: path})."""
        directory = tempfile.mkdtemp(prefix=".cfssl-", dir=self.workdir)
        paths = {}
        for name, document in documents.items():
            path = os.path.join(directory, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
                handle.write(document if isinstance(document, str) else json.dumps(document))
            paths[name] = path
        return directory, paths

    def _call(self, what, args, **documents):
        directory, paths = self._files(**documents)
        try:
            argv = [self.binary] + [paths.get(arg[1:], arg) if isinstance(arg, str) and arg.startswith("@") else arg
                                    for arg in args]
            rc, stdout, stderr = self.run(argv)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        errors = [line for line in (stderr or "").splitlines() if "[ERROR]" in line or "[FATAL]" in line or "[CRITICAL]" in line]
        if rc != 0 or errors:
            detail = "; ".join(errors or (stderr or "").strip().splitlines()[-3:]) or "no message"
            raise CfsslError("cfssl %s failed (rc=%s): %s" % (what, rc, detail))
        try:
            result = json.loads(stdout)
        except ValueError:
            raise CfsslError("cfssl %s printed no JSON result (stderr: %s)" % (what, (stderr or "").strip()[-300:])) from None
        if not isinstance(result, dict) or "cert" not in result and "csr" not in result:
            raise CfsslError("cfssl %s returned no certificate or request" % what)
        return result

    def init_ca(self, spec, key_path=None):
        """A self-signed CA: a new key, or re-issued with the key at ``key_path`` (renewal, subject change)."""
        args = ["gencert", "-initca"] + (["-ca-key", key_path] if key_path else []) + ["@csr.json"]
        return self._call("gencert -initca", args, **{"csr.json": csr_request(spec)})

    def new_key(self, spec):
        """A new key and its CSR (no SANs: they are given when signing). For a CA, the request of an intermediate."""
        args = ["genkey"] + (["-initca"] if spec.get("is_ca") else []) + ["@csr.json"]
        result = self._call("genkey", args, **{"csr.json": csr_request(spec)})
        if not result.get("key") or not result.get("csr"):
            raise CfsslError("cfssl genkey returned no key and request")
        return result

    def sign(self, ca_cert, ca_key, profile, spec, request_pem):
        """A certificate for the key of ``request_pem`` (a stored CSR), with the subject and hosts of ``spec``."""
        return self._call("sign", ["sign", "-ca", ca_cert, "-ca-key", ca_key, "-config", "@config.json",
                                   "-profile", profile, "-hostname", ",".join(spec.get("hosts", [])), "@request.csr",
                                   "@subject.json"],
                          **{"config.json": signing_config(profile, spec["expiry"]), "request.csr": request_pem,
                             "subject.json": subject_request(spec)})
