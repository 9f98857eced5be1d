# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd registry host configuration: validate ``containerd_registries`` and render each ``hosts.toml``.

Used by the containerd role (``vars/main.yml``), so the files are built from data in Python, not by a Jinja
program. Every value is checked before anything is written: a registry name must be a host name (with an
optional port) or ``_default`` (it becomes a directory name and a TOML comment), URLs must be http(s), and no
value may carry a control character (a newline would otherwise become a TOML line or an HTTP header line).
Error messages name the registry and the key, never the value of a credential.
"""

from __future__ import annotations

import base64
import json

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    host_name,
    require_bool,
    require_dict,
    require_str,
    type_name,
)

MARKER = "# Managed by kubeforge.cluster.containerd"
CAPABILITIES = ("pull", "resolve", "push")
DEFAULT_MIRROR_CAPABILITIES = ["pull", "resolve"]
HOST_KEYS = ("server", "capabilities", "skip_verify", "ca", "auth", "headers", "mirrors")
MIRROR_KEYS = ("url", "capabilities", "skip_verify", "ca", "override_path", "auth", "headers")
_HEADER_NAME_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _toml(value):
    """A TOML value: JSON strings, booleans and arrays of strings are valid TOML as they are."""
    return json.dumps(value, ensure_ascii=False)


def _url(option, value):
    require_str(option, value)
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise InputError(option, "must be an http:// or https:// URL without spaces, got %r" % value)
    return value


def _check_entry(option, entry, allowed):
    require_dict(option, entry)
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise InputError(option, "unknown key(s) %s; known keys: %s" % (", ".join(unknown), ", ".join(allowed)))
    checked = {}
    if "server" in entry:
        checked["server"] = _url(option + ".server", entry["server"])
    if "url" in entry:
        checked["url"] = _url(option + ".url", entry["url"])
    if "capabilities" in entry:
        caps = entry["capabilities"]
        if not isinstance(caps, list) or not all(isinstance(c, str) and c in CAPABILITIES for c in caps):
            raise InputError(option + ".capabilities", "must be a list of %s, got %r" % (", ".join(CAPABILITIES), caps))
        checked["capabilities"] = list(caps)
    for key in ("skip_verify", "override_path"):
        if key in entry:
            checked[key] = require_bool("%s.%s" % (option, key), entry[key])
    if "ca" in entry:
        ca = entry["ca"]
        paths = [ca] if isinstance(ca, str) else ca
        if not isinstance(paths, list):
            raise InputError(option + ".ca", "must be a path or a list of paths on the node, got %s" % type_name(ca))
        checked["ca"] = [absolute_path("%s.ca[%d]" % (option, i), p) for i, p in enumerate(paths)]
    headers = {}
    if "headers" in entry:
        require_dict(option + ".headers", entry["headers"])
        for name, value in entry["headers"].items():
            if not name or set(name) - _HEADER_NAME_CHARS:
                raise InputError(option + ".headers", "%r is not an HTTP header name" % name)
            values = value if isinstance(value, list) else [value]
            for index, item in enumerate(values):
                # the value is never shown: headers often carry tokens
                if not isinstance(item, str):
                    raise InputError("%s.headers[%r]" % (option, name), "must be a string or a list of strings, got %s" % type_name(item))
                if any(ord(c) < 32 or ord(c) == 127 for c in item):
                    raise InputError("%s.headers[%r]" % (option, name), "value %d contains a control character" % index)
            headers[name] = value
    if "auth" in entry:
        auth = entry["auth"]
        if not isinstance(auth, dict) or set(auth) != {"username", "password"}:
            raise InputError(option + ".auth", "must be a dict with exactly the keys username and password")
        require_str(option + ".auth.username", auth["username"])
        if ":" in auth["username"]:
            raise InputError(option + ".auth.username", "must not contain ':' (Basic authentication joins user:password)")
        if not isinstance(auth["password"], str) or not auth["password"]:
            raise InputError(option + ".auth.password", "must be a non-empty string (its value is not shown)")
        token = base64.b64encode(("%s:%s" % (auth["username"], auth["password"])).encode("utf-8")).decode("ascii")
        headers["Authorization"] = "Basic " + token
    if headers:
        checked["headers"] = headers
    return checked


def _section(lines, entry, table, indent):
    if table:
        lines.extend(["", "[%s]" % table])
    elif "server" in entry:
        lines.append("server = " + _toml(entry["server"]))
    for key in ("capabilities", "skip_verify", "ca"):
        if key in entry:
            lines.append("%s%s = %s" % (indent, key, _toml(entry[key])))
    if table and "override_path" in entry:
        lines.append("%soverride_path = %s" % (indent, _toml(entry["override_path"])))
    if entry.get("headers"):
        lines.extend(["", "%s[%s]" % (indent, table + ".header" if table else "header")])
        for name in sorted(entry["headers"]):
            lines.append("%s  %s = %s" % (indent, _toml(name), _toml(entry["headers"][name])))


def check_registry(host, settings, option="containerd_registries"):
    """``(entry, mirrors)``: one registry host's settings validated and normalised (``ca`` a list, mirror
    capabilities defaulted, ``auth`` turned into an Authorization header). Also read by the image_tools role."""
    where = "%s[%r]" % (option, host)
    if not isinstance(host, str) or host != "_default":
        try:
            host_name(where, host, allow_port=True)
        except InputError as exc:
            raise InputError(where, "the key must be a registry host name (docker.io, registry.example:5000) or "
                             "_default, never a URL or a path: %s" % exc.problem) from None
    entry = _check_entry(where, settings if settings is not None else {}, HOST_KEYS)
    mirrors = settings.get("mirrors", []) if isinstance(settings, dict) else []
    if not isinstance(mirrors, list):
        raise InputError(where + ".mirrors", "must be a list of dicts with a url, got %s" % type_name(mirrors))
    checked_mirrors = []
    for index, mirror in enumerate(mirrors):
        mirror_where = "%s.mirrors[%d]" % (where, index)
        checked = _check_entry(mirror_where, mirror, MIRROR_KEYS)
        if "url" not in checked:
            raise InputError(mirror_where, "needs a url")
        checked.setdefault("capabilities", list(DEFAULT_MIRROR_CAPABILITIES))
        checked_mirrors.append(checked)
    return entry, checked_mirrors


def registry_file(host, settings, option="containerd_registries"):
    """``{"content": hosts.toml text, "secret": bool}`` for one registry host (validated first)."""
    entry, checked_mirrors = check_registry(host, settings, option)
    lines = [
        '%s (%s["%s"]): edits are overwritten and this' % (MARKER, option, host),
        "# directory is removed when the host leaves %s. containerd reads it on each pull, no restart." % option,
    ]
    _section(lines, entry, "", "")
    for mirror in checked_mirrors:
        _section(lines, mirror, "host." + _toml(mirror["url"]), "  ")
    secret = "headers" in entry or any("headers" in m for m in checked_mirrors)
    return {"content": "".join(line + "\n" for line in lines), "secret": secret}


def checked_registries(registries, option="containerd_registries"):
    """Registry host -> ``{"entry", "mirrors"}`` validated by ``check_registry``; errors name the entry."""
    try:
        if not isinstance(registries, dict):
            raise InputError(option, "must be a dict keyed by registry host, got %s" % type_name(registries))
        checked = {}
        for host in sorted(registries, key=str):
            entry, mirrors = check_registry(host, registries[host], option)
            checked[host] = {"entry": entry, "mirrors": mirrors}
        return checked
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None


def containerd_registry_files(registries, option="containerd_registries"):
    """Registry host -> ``{"content", "secret"}`` for every entry of ``registries``; errors name the entry."""
    try:
        if not isinstance(registries, dict):
            raise InputError(option, "must be a dict keyed by registry host, got %s" % type_name(registries))
        return {host: registry_file(host, registries[host], option) for host in sorted(registries, key=str)}
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
