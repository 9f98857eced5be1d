# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the node's CRI endpoint: probe each candidate socket for real, then pick exactly one.

Used by the ``kubeforge.cluster.cri_socket`` module; importable without AnsibleModule.

Evidence, strongest first, and what ``reason`` says decided:

* a gRPC call ``runtime.v1.RuntimeService/Version`` on the socket (``_grpc_probe``, stdlib
  only): an answer means CRI; ``UNIMPLEMENTED unknown service`` means not CRI;
* for a socket without the CRI, ``containerd.services.version.v1.Version/Version`` and the
  introspection plugin list identify a containerd whose ``cri`` plugin is disabled or broken
  (Docker's bundled containerd);
* ``crictl version`` when crictl is installed and the gRPC probe could not decide;
* with ``probe=False``, only whether the socket accepts connections (what kubeadm checks).
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as grpc

# kubeadm's known CRI sockets (cmd/kubeadm/app/constants: CRISocketContainerd, CRISocketCRIO,
# CRISocketDocker), in the /run spelling the runtimes use and the /var/run one kubeadm uses.
KNOWN_CRI_ENDPOINTS = (
    "unix:///run/containerd/containerd.sock",
    "unix:///var/run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/crio/crio.sock",
    "unix:///run/cri-dockerd.sock",
    "unix:///var/run/cri-dockerd.sock",
)
RUNTIME_NAMES = ("containerd", "crio", "cri-dockerd")
# CRI VersionResponse.runtime_name -> our runtime name (cri-dockerd reports "docker").
_CRI_RUNTIME_NAMES = {"containerd": "containerd", "cri-o": "crio", "crio": "crio", "docker": "cri-dockerd"}
INVENTORY_VARIABLE = "kubeforge_cri_socket"
RUNTIME_ROLES = (
    ("kubeforge.cluster.containerd", "containerd with its cri plugin enabled"),
    ("kubeforge.cluster.cri_dockerd", "Docker Engine with cri-dockerd"),
)

CRI_V1_VERSION = "/runtime.v1.RuntimeService/Version"
CRI_V1ALPHA2_VERSION = "/runtime.v1alpha2.RuntimeService/Version"
CONTAINERD_VERSION = "/containerd.services.version.v1.Version/Version"
CONTAINERD_PLUGINS = "/containerd.services.introspection.v1.Introspection/Plugins"
CRI_PLUGIN_ID = "cri"


class CriSocketError(Exception):
    """Selection failed; ``endpoints`` holds what was found, for the operator."""

    def __init__(self, message, endpoints=None):
        Exception.__init__(self, message)
        self.endpoints = endpoints or []


def normalize_endpoint(value):
    """Return ``(unix:// URL, path)`` for ``unix:///path`` or ``/path``; ValueError otherwise."""
    text = str(value).strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
    elif text.startswith("/"):
        path = text
    else:
        raise ValueError(
            "%r is not a unix socket endpoint: use unix:///path/to/socket or an absolute path "
            "(kubeadm and kubelet on Linux only use unix sockets)" % text)
    if not path.startswith("/"):
        raise ValueError("%r: the socket path must be absolute (unix:///run/..., three slashes)" % text)
    path = os.path.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return "unix://" + path, path


def _new_entry(endpoint, path):
    return {
        "endpoint": endpoint, "path": path, "exists": False, "listening": False, "cri": None,
        "cri_api": None, "runtime": None, "runtime_version": None, "reason": "", "alias_of": None,
    }


def _runtime_from_cri(name):
    return _CRI_RUNTIME_NAMES.get((name or "").strip().lower(), (name or "").strip().lower() or None)


def _cri_plugin_state(path, timeout):
    """Explain a containerd without CRI from its plugin list; None when it cannot be read."""
    try:
        result = grpc.grpc_unary(path, CONTAINERD_PLUGINS, grpc.encode_string_field(1, "id==" + CRI_PLUGIN_ID), timeout)
    except grpc.ProbeError:
        return None
    if not result.ok:
        return None
    try:
        plugins = [grpc.decode_fields(raw) for raw in result.message_fields.get(1, [])]
    except ValueError:
        return None
    if not plugins:
        return "its plugin list has no cri plugin (disabled_plugins in its config.toml, as Docker ships it)"
    for plugin in plugins:
        errors = plugin.get(7)
        if errors:
            status = grpc.decode_fields(errors[-1])
            return "its cri plugin (%s) failed to start: %s" % (grpc.field_text(plugin, 1), grpc.field_text(status, 2) or "no message")
    return "its cri plugin is loaded but the CRI service does not answer"


def _crictl_evidence(entry, crictl, run_command, timeout):
    """Decide with ``crictl version`` (installed crictl only); return True when it decided."""
    argv = [crictl, "--runtime-endpoint", entry["endpoint"], "--timeout", "%ds" % max(1, round(timeout)), "version"]
    rc, out, err = run_command(argv)
    fields = {
        key.strip(): value.strip()
        for key, sep, value in (line.partition(":") for line in (out or "").splitlines()) if sep
    }
    if rc == 0 and fields.get("RuntimeApiVersion"):
        entry["runtime"] = _runtime_from_cri(fields.get("RuntimeName"))
        entry["runtime_version"] = fields.get("RuntimeVersion") or None
        entry["cri_api"] = fields["RuntimeApiVersion"] if fields["RuntimeApiVersion"] in ("v1", "v1alpha2") else None
        entry["cri"] = fields["RuntimeApiVersion"] == "v1"
        entry["reason"] += "; crictl version decided: %s %s, CRI API %s" % (
            fields.get("RuntimeName"), fields.get("RuntimeVersion"), fields["RuntimeApiVersion"])
        return True
    message = " ".join((err or out or "").split())[:300]
    if re.search(r"unknown service runtime\.v1\.RuntimeService", message):
        entry["cri"] = False
        entry["reason"] += "; crictl version decided: %s" % message
        return True
    entry["reason"] += "; crictl version failed (rc=%s): %s" % (rc, message or "no output")
    return False


def probe_endpoint(endpoint, path, probe=True, timeout=2.0, crictl=None, run_command=None):
    """Return the ``endpoints`` entry of one candidate socket."""
    entry = _new_entry(endpoint, path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        entry["cri"] = False
        entry["reason"] = "no such socket"
        return entry
    except OSError as exc:
        entry["exists"] = os.path.lexists(path)
        entry["reason"] = "cannot stat %s: %s%s; CRI capability undecided" % (
            path, exc.strerror or exc, " (run as root / become: true)" if isinstance(exc, PermissionError) else "")
        return entry
    entry["exists"] = True
    if not stat.S_ISSOCK(mode):
        entry["cri"] = False
        entry["reason"] = "%s exists but is not a unix socket" % path
        return entry

    if not probe:
        try:
            grpc.check_listening(path, timeout)
        except grpc.ProbeError as exc:
            entry["cri"] = None if isinstance(exc, (grpc.AccessDenied, grpc.Timeout)) else False
            entry["reason"] = _not_listening_reason(exc)
            return entry
        entry["listening"] = True
        entry["reason"] = "accepts connections; CRI not checked (probe=false, the socket test kubeadm does)"
        return entry

    try:
        result = grpc.grpc_unary(path, CRI_V1_VERSION, grpc.encode_string_field(1, "v1"), timeout)
    except grpc.AccessDenied as exc:
        entry["reason"] = "%s; CRI capability undecided" % exc
        return entry
    except (grpc.NotFound, grpc.NotListening) as exc:
        entry["cri"] = False
        entry["reason"] = _not_listening_reason(exc)
        return entry
    except grpc.NotHttp2 as exc:
        entry["listening"] = True
        entry["cri"] = False
        if b"Docker/" in exc.answer or b"Api-Version:" in exc.answer:
            entry["runtime"] = "docker"
            entry["reason"] = ("the Docker Engine API (HTTP/1.1), not a CRI endpoint: Kubernetes talks to Docker "
                               "only through cri-dockerd (gRPC probe)")
        else:
            entry["reason"] = "listens but is not a gRPC server: %s (gRPC probe)" % exc
        return entry
    except grpc.ProbeError as exc:
        entry["listening"] = True
        entry["reason"] = "accepts connections but the gRPC probe failed: %s" % exc
        _maybe_crictl(entry, crictl, run_command, timeout)
        return entry
    entry["listening"] = True

    if result.ok:
        _record_cri_answer(entry, result, "v1")
        entry["cri"] = True
        entry["reason"] = "answers %s (gRPC probe): %s %s, CRI API v1" % (
            CRI_V1_VERSION[1:], entry["runtime"], entry["runtime_version"])
        return entry

    v1_error = "%s -> %s" % (CRI_V1_VERSION[1:], result.describe())
    if result.status == grpc.UNIMPLEMENTED:
        entry["cri"] = False
        try:
            legacy = grpc.grpc_unary(path, CRI_V1ALPHA2_VERSION, b"", timeout)
        except grpc.ProbeError:
            legacy = None
        if legacy is not None and legacy.ok:
            _record_cri_answer(entry, legacy, "v1alpha2")
            entry["reason"] = ("%s %s answers only the CRI v1alpha2 API (%s); kubelet 1.26 and later need "
                               "runtime.v1: upgrade the runtime (gRPC probe)") % (entry["runtime"], entry["runtime_version"], v1_error)
            return entry
    else:
        entry["cri"] = None  # a CRI service that errors: neither proven nor disproven
    identity = _containerd_identity(path, timeout)
    if identity is not None:
        entry["runtime"] = "containerd"
        entry["runtime_version"] = identity
        if entry["cri"] is False:
            detail = _cri_plugin_state(path, timeout)
            entry["reason"] = "containerd %s answers its own API but not the CRI: %s%s (gRPC probe)" % (
                identity, v1_error, "; " + detail if detail else "")
            return entry
        entry["reason"] = "containerd %s: %s (gRPC probe)" % (identity, v1_error)
    elif entry["cri"] is False:
        entry["reason"] = "a gRPC server without the CRI: %s (gRPC probe)" % v1_error
        return entry
    else:
        entry["reason"] = "%s (gRPC probe)" % v1_error
    _maybe_crictl(entry, crictl, run_command, timeout)
    return entry


def _maybe_crictl(entry, crictl, run_command, timeout):
    if entry["cri"] is None and crictl and run_command is not None:
        _crictl_evidence(entry, crictl, run_command, timeout)
    if entry["cri"] is None:
        entry["reason"] += "; CRI capability undecided"


def _not_listening_reason(exc):
    if isinstance(exc, grpc.NotFound):
        return "no such socket"
    text = str(exc)
    if "connection refused" in text:
        return "stale socket file: nothing listens on it (connection refused)"
    return text


def _record_cri_answer(entry, result, api):
    fields = result.message_fields
    entry["cri_api"] = api
    entry["runtime"] = _runtime_from_cri(grpc.field_text(fields, 2))
    entry["runtime_version"] = grpc.field_text(fields, 3) or None


def _containerd_identity(path, timeout):
    try:
        result = grpc.grpc_unary(path, CONTAINERD_VERSION, b"", timeout)
    except grpc.ProbeError:
        return None
    if not result.ok:
        return None
    try:
        return grpc.field_text(result.message_fields, 1) or "(unknown version)"
    except ValueError:
        return None


def _socket_key(path):
    try:
        info = os.stat(path)
        return ("inode", info.st_dev, info.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def build_candidates(candidates, extra=None, preferred=None):
    """Normalised, de-duplicated ``[(url, path)]``; the preferred endpoint is added when missing."""
    seen = set()
    result = []
    values = [("candidates", v) for v in candidates or []] + [("extra_candidates", v) for v in extra or []]
    if preferred and preferred not in RUNTIME_NAMES:
        values.append(("preferred", preferred))
    for option, value in values:
        try:
            url, path = normalize_endpoint(value)
        except ValueError as exc:
            if option == "preferred":
                raise ValueError("preferred (inventory variable %s) must be a unix:// endpoint URL, an absolute socket path "
                                 "or one of %s; got %r" % (INVENTORY_VARIABLE, ", ".join(RUNTIME_NAMES), value)) from None
            raise ValueError("%s: %s" % (option, exc)) from None
        if url not in seen:
            seen.add(url)
            result.append((url, path))
    return result


def probe_all(candidates, probe=True, timeout=2.0, crictl=None, run_command=None):
    """Probe each candidate once per real socket; later spellings of one socket become aliases."""
    endpoints = []
    primary = {}
    for url, path in candidates:
        key = _socket_key(path)
        if key in primary:
            first = primary[key]
            entry = dict(first)
            entry.update(endpoint=url, path=path, alias_of=first["endpoint"])
            endpoints.append(entry)
            continue
        entry = probe_endpoint(url, path, probe=probe, timeout=timeout, crictl=crictl, run_command=run_command)
        primary[key] = entry
        endpoints.append(entry)
    return endpoints


def _usable(entry, probe):
    if entry["alias_of"] is not None:
        return False
    return entry["cri"] is True or (not probe and entry["listening"])


def describe(entry):
    """``unix:///run/containerd/containerd.sock (containerd 1.7.24)``."""
    what = " ".join(part for part in (entry.get("runtime"), entry.get("runtime_version")) if part)
    return "%s (%s)" % (entry["endpoint"], what or "runtime unknown")


def _list(entries):
    return ", ".join(describe(e) for e in entries)


def _none_message(endpoints):
    checked = "; ".join("%s: %s" % (e["endpoint"], e["reason"]) for e in endpoints if e["alias_of"] is None)
    roles = " or ".join("%s (%s)" % role for role in RUNTIME_ROLES)
    hints = []
    for entry in endpoints:
        if entry["alias_of"] is None and entry["runtime"] == "containerd" and entry["cri"] is False:
            hints.append(
                "containerd at %s has no CRI: enable its cri plugin (remove \"cri\" / \"io.containerd.grpc.v1.cri\" from "
                "disabled_plugins in its config.toml; kubeforge.cluster.containerd does that) or, on a Docker node, "
                "use cri-dockerd" % entry["endpoint"])
    return "No CRI endpoint found on this node. Checked: %s. %sInstall and start a container runtime that serves the CRI, " \
           "e.g. with the role %s; if it listens on another socket, add that socket to extra_candidates." % (
               checked, " ".join(hints) + (". " if hints else ""), roles)


def select(endpoints, preferred=None, probe=True):
    """Return the one endpoint URL to use, or raise :class:`CriSocketError` saying why not."""
    usable = [e for e in endpoints if _usable(e, probe)]
    what = "CRI endpoints" if probe else "listening sockets (probe=false)"
    if preferred:
        if preferred in RUNTIME_NAMES:
            matches = [e for e in usable if e["runtime"] == preferred]
            if len(matches) == 1:
                return matches[0]["endpoint"]
            if len(matches) > 1:
                raise CriSocketError(
                    "preferred=%s matches several %s: %s. Set the inventory variable %s to one endpoint URL "
                    "instead of the runtime name." % (preferred, what, _list(matches), INVENTORY_VARIABLE), endpoints)
            if not usable:
                raise CriSocketError("preferred=%s: %s" % (preferred, _none_message(endpoints)), endpoints)
            raise CriSocketError(
                "preferred=%s (inventory variable %s): no CRI endpoint of that runtime on this node. %s found: %s. "
                "Set %s to one of them or install %s." % (
                    preferred, INVENTORY_VARIABLE, what[0].upper() + what[1:], _list(usable), INVENTORY_VARIABLE, preferred), endpoints)
        url = normalize_endpoint(preferred)[0]
        entry = next((e for e in endpoints if e["endpoint"] == url), None)
        if entry is not None and (entry["cri"] is True or (not probe and entry["listening"])):
            return url
        reason = entry["reason"] if entry is not None else "not probed"
        if not usable:
            raise CriSocketError(
                "preferred=%s (inventory variable %s) is not a usable CRI endpoint: %s. %s" % (
                    url, INVENTORY_VARIABLE, reason, _none_message(endpoints)), endpoints)
        raise CriSocketError(
            "preferred=%s (inventory variable %s) is not a usable CRI endpoint: %s. %s on this node: %s. "
            "Set %s to one of them." % (url, INVENTORY_VARIABLE, reason, what[0].upper() + what[1:], _list(usable),
                                        INVENTORY_VARIABLE), endpoints)
    if len(usable) == 1:
        return usable[0]["endpoint"]
    if not usable:
        raise CriSocketError(_none_message(endpoints), endpoints)
    raise CriSocketError(
        "Found multiple %s on this node: %s. kubeadm, kubelet and crictl need exactly one: set the inventory variable "
        "%s (this module's preferred option) to one of these endpoint URLs, or to a runtime name (%s)." % (
            what, _list(usable), INVENTORY_VARIABLE, ", ".join(RUNTIME_NAMES)), endpoints)


def detect(candidates, extra=None, preferred=None, probe=True, timeout=2.0, crictl=None, run_command=None):
    """Probe the candidates and select one; return ``(endpoints, cri_socket)``.

    Raises ValueError for malformed endpoints and :class:`CriSocketError` when no single
    endpoint can be chosen.
    """
    if preferred is not None:
        preferred = str(preferred).strip() or None
    pairs = build_candidates(candidates, extra, preferred)
    if not pairs:
        raise ValueError("candidates and extra_candidates are both empty: give at least one socket to check")
    endpoints = probe_all(pairs, probe=probe, timeout=timeout, crictl=crictl, run_command=run_command)
    return endpoints, select(endpoints, preferred, probe)
