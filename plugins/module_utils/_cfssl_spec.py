# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of ``kubeforge.cluster.cfssl_cert`` checked and completed with defaults (stdlib only).

Every problem is an ``InputError`` naming the option (``certificates[2].hosts[0]``) before cfssl runs or a file is
touched.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import PROFILES
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    host_name,
    require_bool,
    require_dict,
    require_int,
    require_list,
    require_str,
    safe_name,
)

CA_NAME = "ca"
NAME_KEYS = ("C", "ST", "L", "O", "OU")
KEY_SIZES = {"rsa": (2048, 3072, 4096), "ecdsa": (256, 384, 521)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOURS_RE = re.compile(r"^([0-9]{1,7})h$")


def hours(option, value):
    require_str(option, value)
    match = _HOURS_RE.match(value)
    if not match or int(match.group(1)) == 0:
        raise InputError(option, "must be a number of hours as cfssl writes it, e.g. '8760h' (one year), got %r" % value)
    return int(match.group(1))


def _names(option, value):
    entries = [value] if isinstance(value, dict) else require_list(option, value)
    result = []
    for index, entry in enumerate(entries):
        where = option if isinstance(value, dict) else "%s[%d]" % (option, index)
        require_dict(where, entry)
        for key, item in entry.items():
            if key not in NAME_KEYS:
                raise InputError(where, "unknown name attribute %r (use %s)" % (key, ", ".join(NAME_KEYS)))
            require_str("%s.%s" % (where, key), item)
        result.append({key: entry[key] for key in NAME_KEYS if key in entry})
    return result


def _key(option, value, default):
    if value is None:
        return dict(default)
    require_dict(option, value)
    unknown = set(value) - {"algo", "size"}
    if unknown:
        raise InputError(option, "unknown keys %s (use algo and size)" % sorted(unknown))
    algo = value.get("algo", default["algo"])
    if algo not in KEY_SIZES:
        raise InputError(option + ".algo", "must be rsa or ecdsa, got %r" % (algo,))
    size = require_int(option + ".size", value.get("size", default["size"] if algo == default["algo"] else KEY_SIZES[algo][0]))
    if size not in KEY_SIZES[algo]:
        raise InputError(option + ".size", "%s keys can be %s bits, got %d" % (algo, "/".join(map(str, KEY_SIZES[algo])), size))
    return {"algo": algo, "size": size}


def csr_host(option, value):
    """A SAN: an IP address (canonical form) or a DNS name, optionally with a leading '*.' wildcard label."""
    require_str(option, value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    bare = value[2:] if value.startswith("*.") else value
    try:
        host_name(option, bare)
    except InputError:
        raise InputError(option, "%r is neither a DNS name nor an IP address (a CSR host must be one)" % value) from None
    return value.lower()


def _hosts(option, value):
    hosts = []
    for host in require_list(option, value, csr_host):
        if host not in hosts:
            hosts.append(host)
    return hosts


def normalize(params):
    """The validated request: ``dir``, ``ca`` and ``certificates`` specs with every default filled in."""
    directory = absolute_path("dir", params["dir"])
    default_key = _key("key", params.get("key"), {"algo": "ecdsa", "size": 256})
    renew = hours("renew_before", params.get("renew_before") or "720h")
    ca = require_dict("ca", params.get("ca") or {})
    unknown = set(ca) - {"cn", "names", "key", "expiry", "signed_by"}
    if unknown:
        raise InputError("ca", "unknown keys %s" % sorted(unknown))
    ca_spec = {
        "name": CA_NAME, "is_ca": True, "cn": require_str("ca.cn", ca.get("cn")),
        "names": _names("ca.names", ca.get("names") or []), "key": _key("ca.key", ca.get("key"), default_key),
        "expiry": ca.get("expiry") or "87600h", "signed_by": None,
    }
    ca_spec["hours"] = hours("ca.expiry", ca_spec["expiry"])
    if ca.get("signed_by") is not None:
        signed_by = require_dict("ca.signed_by", ca["signed_by"])
        ca_spec["signed_by"] = {"cert": absolute_path("ca.signed_by.cert", signed_by.get("cert")),
                                "key": absolute_path("ca.signed_by.key", signed_by.get("key"))}
    certificates, seen = [], set()
    for index, item in enumerate(require_list("certificates", params.get("certificates") or [])):
        where = "certificates[%d]" % index
        require_dict(where, item)
        unknown = set(item) - {"name", "cn", "hosts", "profile", "names", "key", "expiry"}
        if unknown:
            raise InputError(where, "unknown keys %s" % sorted(unknown))
        name = safe_name(where + ".name", item.get("name"), "certificate name", _NAME_RE, max_length=100)
        if name == CA_NAME or name in seen:
            raise InputError(where + ".name", "%r is %s" % (name, "reserved for the CA" if name == CA_NAME else "used twice"))
        seen.add(name)
        profile = item.get("profile", "peer")
        if profile not in PROFILES:
            raise InputError(where + ".profile", "must be one of %s, got %r" % (", ".join(sorted(PROFILES)), profile))
        spec = {"name": name, "is_ca": False, "cn": require_str(where + ".cn", item.get("cn", name)), "profile": profile,
                "hosts": _hosts(where + ".hosts", item.get("hosts") or []), "names": _names(where + ".names", item.get("names") or []),
                "key": _key(where + ".key", item.get("key"), default_key), "expiry": item.get("expiry") or params.get("expiry") or "8760h"}
        spec["hours"] = hours(where + ".expiry", spec["expiry"])
        certificates.append(spec)
    return {
        "dir": directory, "ca": ca_spec, "certificates": certificates, "renew_hours": renew,
        "rotate_keys": require_bool("rotate_keys", params.get("rotate_keys", False)),
        "force": require_bool("force", params.get("force", False)),
    }
