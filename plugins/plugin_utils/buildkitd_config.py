# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""buildkitd.toml for the image_tools role: the containerd worker, garbage collection and the registry settings of
``containerd_registries`` translated to BuildKit's ``[registry."<host>"]`` tables.

Used in ``roles/image_tools/vars/main.yml``, so the file is built from validated data in Python (with tomlkit, on the
controller), not by a Jinja program. The input is a dict keyed by the role's variable names, and every error names
the variable (and the registry entry) to fix.

How containerd's hosts.toml settings map to BuildKit (the parts BuildKit cannot express are listed as comments at
the top of the file, never silently dropped):

- ``skip_verify`` -> ``insecure``, ``ca`` -> ``ca``, an ``http://`` server or mirror URL -> ``http = true``;
- each mirror with the ``pull`` capability -> an entry of ``mirrors`` (host, port and the path after ``/v2``, the
  form BuildKit expects) plus a ``[registry."<mirror host>"]`` table with that mirror's own TLS settings;
- a ``server`` on another host than the registry key -> the last mirror (BuildKit always falls back to the registry
  host itself; pushes go there);
- ``auth`` and ``headers`` are never written: buildkitd takes registry credentials from the client (buildctl and
  nerdctl read ``~/.docker/config.json``, written by ``nerdctl login``), so no secret reaches this file;
- ``_default`` has no BuildKit equivalent.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    plain_data,
    require_bool,
    require_dict,
    require_str,
    safe_name,
)

try:
    import tomlkit
except ImportError:  # pragma: no cover - tomlkit is in requirements.txt
    tomlkit = None

MARKER = "# Managed by kubeforge.cluster.image_tools: edits are overwritten (image_tools_buildkit_* variables)."
# A disk space for BuildKit's garbage collector: bytes, a size with a unit (binary multiples), or a percentage.
_SPACE_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?\s*(?:[kKmMgGtTpP][iI]?[bB]?|[bB])?|(?:100|[0-9]{1,2}(?:\.[0-9]+)?)%)$")
_GC_OPTIONS = (
    ("image_tools_buildkit_gc_reserved_space", "reservedSpace"),
    ("image_tools_buildkit_gc_max_used_space", "maxUsedSpace"),
    ("image_tools_buildkit_gc_min_free_space", "minFreeSpace"),
)
# Settings the role writes itself, with the variable to set instead of overriding them in the extra settings.
_MANAGED = {
    ("root",): "image_tools_buildkit_root",
    ("grpc", "address"): "image_tools_buildkit_address",
    ("worker", "containerd", "enabled"): "image_tools_buildkit_enabled",
    ("worker", "containerd", "address"): "image_tools_containerd_address",
    ("worker", "containerd", "namespace"): "image_tools_namespace",
    ("worker", "containerd", "gc"): "image_tools_buildkit_gc_enabled",
    ("worker", "containerd", "reservedSpace"): "image_tools_buildkit_gc_reserved_space",
    ("worker", "containerd", "maxUsedSpace"): "image_tools_buildkit_gc_max_used_space",
    ("worker", "containerd", "minFreeSpace"): "image_tools_buildkit_gc_min_free_space",
}


def unix_address(option, value):
    """A ``unix:///abs/path`` listening address (the socket whose group is image_tools_buildkit_group)."""
    require_str(option, value)
    if not value.startswith("unix:///"):
        raise InputError(option, "must be a unix:// socket address such as unix:///run/buildkit/buildkitd.sock, got %r "
                         "(a TCP listener without TLS would let anyone on the network build as root)" % value)
    absolute_path(option, value[len("unix://"):])
    return value


def disk_space(option, value):
    """``""`` (BuildKit's default), a byte count, ``"10GB"``-style sizes or ``"10%"`` of the disk."""
    if isinstance(value, str) and value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InputError(option, "must not be negative, got %d" % value)
        return int(value)
    if isinstance(value, str) and _SPACE_RE.match(value.strip()):
        return value.strip()
    raise InputError(option, "must be empty (BuildKit's default), a number of bytes, a size such as \"20GB\" or a "
                     "percentage of the disk such as \"10%%\", got %r" % (value,))


def _endpoint(option, url, override_path):
    """``(scheme, "host[:port][/path]")`` of a containerd server or mirror URL in BuildKit's mirror form, or
    ``(None, reason)`` when BuildKit cannot address it the way containerd does."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(option, "must be an http:// or https:// URL, got %r" % url)
    if parts.username is not None or parts.password is not None:
        # the value is not shown: it carries a credential
        raise InputError(option, "must not carry a user name or password; give credentials with auth")
    netloc = parts.netloc
    path = parts.path.rstrip("/")
    if override_path:
        if path != "/v2" and not path.startswith("/v2/"):
            return None, "%s with override_path has no /v2 prefix, which BuildKit always adds" % url
        return parts.scheme, netloc + path[len("/v2"):]
    if path:
        return None, ("%s has a path without override_path (containerd appends /v2 to it, BuildKit puts /v2 before "
                      "it)" % url)
    return parts.scheme, netloc


def _tls(entry, scheme):
    """The BuildKit settings of one registry host from a checked hosts.toml entry."""
    settings = {}
    if scheme == "http":
        settings["http"] = True
    elif entry.get("skip_verify"):
        settings["insecure"] = True
    if entry.get("ca"):
        settings["ca"] = list(entry["ca"])
    return settings


class _Tables:
    """``[registry."<host>"]`` tables, refusing two entries that want different settings for one host."""

    def __init__(self):
        self.tables = {}
        self.owner = {}

    def merge(self, host, settings, where):
        table = self.tables.setdefault(host, {})
        for key, value in settings.items():
            if key in table and table[key] != value:
                raise InputError(where, "sets %s = %r for the registry host %s, but %s sets %r; BuildKit has one set of "
                                 "settings per host: make them agree" % (key, value, host, self.owner[(host, key)], table[key]))
            table[key] = value
            self.owner.setdefault((host, key), where)

    def add_mirror(self, host, mirror):
        mirrors = self.tables.setdefault(host, {}).setdefault("mirrors", [])
        if mirror not in mirrors:
            mirrors.append(mirror)


def buildkit_registries(checked, option="image_tools_registries"):
    """``(tables, notes)``: BuildKit's ``registry`` tables from checked containerd registry entries (one for every
    host referenced, possibly empty), and one comment line per setting BuildKit cannot express.

    ``checked`` maps a registry host to ``{"entry": {...}, "mirrors": [{...}, ...]}`` as the containerd role's
    registry filter validates them: URLs checked, ``ca`` a list of absolute paths, ``capabilities`` lists.
    """
    tables, notes = _Tables(), []
    for host in sorted(checked):
        entry, mirrors = checked[host]["entry"], checked[host]["mirrors"]
        where = "%s[%r]" % (option, host)
        if host == "_default":
            notes.append("%s: not applied, BuildKit has no default registry settings" % where)
            continue
        if "headers" in entry or "auth" in entry or any("headers" in m or "auth" in m for m in mirrors):
            notes.append("%s: credentials and headers are not written; buildctl and nerdctl send credentials from "
                         "~/.docker/config.json (nerdctl login)" % where)
        for index, mirror in enumerate(mirrors):
            mirror_where = "%s.mirrors[%d]" % (where, index)
            if "pull" not in mirror.get("capabilities", ["pull"]):
                notes.append("%s: not applied, BuildKit mirrors only pull (capabilities %s)"
                             % (mirror_where, ", ".join(mirror["capabilities"])))
                continue
            scheme, target = _endpoint(mirror_where + ".url", mirror["url"], mirror.get("override_path", False))
            if scheme is None:
                notes.append("%s: not applied, %s" % (mirror_where, target))
                continue
            tables.add_mirror(host, target)
            tables.merge(target.split("/", 1)[0], _tls(mirror, scheme), mirror_where)
        scheme, target = "https", host
        if "server" in entry:
            scheme, target = _endpoint(where + ".server", entry["server"], False)
            if scheme is None:
                notes.append("%s.server: not applied, %s" % (where, target))
                continue
        if target in (host, "registry-1.docker.io" if host == "docker.io" else host):
            tables.merge(host, _tls(entry, scheme), where)
        else:
            # BuildKit contacts the registry host itself after its mirrors: the server is reached as the last mirror
            tables.add_mirror(host, target)
            tables.merge(target, _tls(entry, scheme), where + ".server")
            notes.append("%s.server: %s is used as the last pull mirror; pushes go to %s itself" % (where, entry["server"], host))
    return tables.tables, notes


def _check_extra(extra, ours, registry_hosts):
    """Refuse extra settings that would silently replace what a role variable sets."""
    for path, variable in _MANAGED.items():
        node = extra
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            raise InputError("image_tools_buildkit_config_extra", "sets %s, which the role writes from %s: set that variable "
                             "instead" % (".".join(path), variable))
    for host in (extra.get("registry") or {}):
        if host in registry_hosts:
            raise InputError("image_tools_buildkit_config_extra", "sets registry.%s, which the role writes from "
                             "image_tools_registries (containerd_registries): change it there" % host)
    return _merge(ours, extra)


def _merge(base, extra):
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _checked_registries(registries, option):
    # the containerd role's validation of containerd_registries (hosts, URLs, capabilities, CA paths, credentials)
    from ansible_collections.kubeforge.cluster.plugins.plugin_utils.registry_hosts import checked_registries

    return checked_registries(registries, option)


def buildkitd_config(variables):
    """The text of buildkitd.toml from the image_tools variables in ``variables`` (a dict keyed by variable name)."""
    if tomlkit is None:  # pragma: no cover
        raise AnsibleFilterError("buildkitd_config needs the Python library tomlkit on the controller (requirements.txt)")
    try:
        require_dict("buildkitd_config input", variables)
        namespace = safe_name("image_tools_namespace", variables["image_tools_namespace"], what="containerd namespace")
        worker = {
            "enabled": True,
            "address": absolute_path("image_tools_containerd_address", variables["image_tools_containerd_address"]),
            "namespace": namespace,
            "gc": require_bool("image_tools_buildkit_gc_enabled", variables["image_tools_buildkit_gc_enabled"]),
        }
        for name, key in _GC_OPTIONS:
            space = disk_space(name, variables.get(name, ""))
            if space is not None:
                worker[key] = space
        config = {
            "root": absolute_path("image_tools_buildkit_root", variables["image_tools_buildkit_root"]),
            "grpc": {"address": [unix_address("image_tools_buildkit_address", variables["image_tools_buildkit_address"])]},
            # only the containerd worker: images land in containerd (namespace above), where the kubelet sees them
            "worker": {"oci": {"enabled": False}, "containerd": worker},
        }
        registries, notes = buildkit_registries(_checked_registries(variables.get("image_tools_registries") or {},
                                                                    "image_tools_registries"))
        if any(registries.values()):
            config["registry"] = {host: table for host, table in registries.items() if table}
        extra = plain_data("image_tools_buildkit_config_extra", variables.get("image_tools_buildkit_config_extra") or {})
        require_dict("image_tools_buildkit_config_extra", extra)
        config = _check_extra(extra, config, registries)
    except KeyError as exc:
        raise AnsibleFilterError("buildkitd_config: the input lacks %s" % exc) from None
    except InputError as exc:
        raise AnsibleFilterError(str(exc)) from None
    header = [MARKER] + ["# %s" % note for note in notes]
    return "\n".join(header) + "\n\n" + tomlkit.dumps(config)
