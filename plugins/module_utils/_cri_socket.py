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

All candidates are probed at the same time, each within one deadline shared by every call made for it
(``_grpc_probe.Deadline``), so the whole probe takes about ``timeout`` however many sockets there are.
Messages name this module's options (``preferred``, ``preferred_runtime``, ``extra_candidates``), never a
playbook variable: the roles that call the module say which of their variables feeds which option.
"""

from __future__ import annotations

import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kubeforge.cluster.plugins.module_utils import _grpc_probe as grpc
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, require_list, require_str

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
MAX_CANDIDATES = 64  # probed concurrently, one thread each
CRICTL_MIN_SECONDS = 0.2  # crictl is not started with less time left than this
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


def normalize_endpoint(option, value):
    """Return ``(unix:// URL, path)`` for ``unix:///path`` or ``/path``; InputError naming ``option`` otherwise."""
    text = require_str(option, value, max_length=4096).strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
    elif text.startswith("/"):
        path = text
    else:
        raise InputError(option, "%r is not a unix socket endpoint: use unix:///path/to/socket or an absolute path "
                                 "(kubeadm and kubelet on Linux only use unix sockets)" % text)
    if not path.startswith("/"):
        raise InputError(option, "%r: the socket path must be absolute (unix:///run/..., three slashes)" % text)
    path = absolute_path(option, path)
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


def _cri_plugin_state(path, deadline):
    """Explain a containerd without CRI from its plugin list; None when it cannot be read."""
    try:
        result = grpc.grpc_unary(path, CONTAINERD_PLUGINS, grpc.encode_string_field(1, "id==" + CRI_PLUGIN_ID), deadline=deadline)
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


def _crictl_evidence(entry, crictl, run_command, deadline):
    """Decide with ``crictl version`` (installed crictl only) in the time left; return True when it decided."""
    left = deadline.remaining()
    if left < CRICTL_MIN_SECONDS:
        entry["reason"] += "; no time left for crictl version (%.1fs of %.1fs)" % (max(left, 0), deadline.seconds)
        return False
    argv = [crictl, "--runtime-endpoint", entry["endpoint"], "--timeout", "%dms" % int(left * 1000), "version"]
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
    """Return the ``endpoints`` entry of one candidate socket; every call made for it ends within ``timeout``."""
    deadline = grpc.Deadline(timeout)
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
            grpc.check_listening(path, deadline=deadline)
        except grpc.ProbeError as exc:
            entry["cri"] = None if isinstance(exc, (grpc.AccessDenied, grpc.Timeout)) else False
            entry["reason"] = _not_listening_reason(exc)
            return entry
        entry["listening"] = True
        entry["reason"] = "accepts connections; CRI not checked (probe=false, the socket test kubeadm does)"
        return entry

    try:
        result = grpc.grpc_unary(path, CRI_V1_VERSION, grpc.encode_string_field(1, "v1"), deadline=deadline)
    except (grpc.AccessDenied, grpc.Busy) as exc:
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
        _maybe_crictl(entry, crictl, run_command, deadline)
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
            legacy = grpc.grpc_unary(path, CRI_V1ALPHA2_VERSION, b"", deadline=deadline)
        except grpc.ProbeError:
            legacy = None
        if legacy is not None and legacy.ok:
            _record_cri_answer(entry, legacy, "v1alpha2")
            entry["reason"] = ("%s %s answers only the CRI v1alpha2 API (%s); kubelet 1.26 and later need "
                               "runtime.v1: upgrade the runtime (gRPC probe)") % (entry["runtime"], entry["runtime_version"], v1_error)
            return entry
    else:
        entry["cri"] = None  # a CRI service that errors: neither proven nor disproven
    identity = _containerd_identity(path, deadline)
    if identity is not None:
        entry["runtime"] = "containerd"
        entry["runtime_version"] = identity
        if entry["cri"] is False:
            detail = _cri_plugin_state(path, deadline)
            entry["reason"] = "containerd %s answers its own API but not the CRI: %s%s (gRPC probe)" % (
                identity, v1_error, "; " + detail if detail else "")
            return entry
        entry["reason"] = "containerd %s: %s (gRPC probe)" % (identity, v1_error)
    elif entry["cri"] is False:
        entry["reason"] = "a gRPC server without the CRI: %s (gRPC probe)" % v1_error
        return entry
    else:
        entry["reason"] = "%s (gRPC probe)" % v1_error
    _maybe_crictl(entry, crictl, run_command, deadline)
    return entry


def _maybe_crictl(entry, crictl, run_command, deadline):
    if entry["cri"] is None and crictl and run_command is not None:
        _crictl_evidence(entry, crictl, run_command, deadline)
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


def _containerd_identity(path, deadline):
    try:
        result = grpc.grpc_unary(path, CONTAINERD_VERSION, b"", deadline=deadline)
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


def build_candidates(candidates, extra=None, preferred=""):
    """Normalised, de-duplicated ``[(url, path)]``; the preferred endpoint is added when missing."""
    seen = set()
    result = []
    values = [("candidates[%d]" % i, v) for i, v in enumerate(require_list("candidates", candidates or []))]
    values += [("extra_candidates[%d]" % i, v) for i, v in enumerate(require_list("extra_candidates", extra or []))]
    if preferred:
        values.append(("preferred", preferred))
    for option, value in values:
        url, path = normalize_endpoint(option, value)
        if url not in seen:
            seen.add(url)
            result.append((url, path))
    if len(result) > MAX_CANDIDATES:
        raise InputError("candidates", "%d distinct endpoints with extra_candidates and preferred; at most %d are probed"
                         % (len(result), MAX_CANDIDATES))
    return result


def probe_all(candidates, probe=True, timeout=2.0, crictl=None, run_command=None):
    """Probe each real socket once, all at the same time, each within ``timeout``; later spellings of one
    socket become aliases. The whole probe takes about ``timeout`` at most, however many candidates."""
    order = []
    primary = {}
    for url, path in candidates:
        key = _socket_key(path)
        order.append((url, path, key))
        primary.setdefault(key, (url, path))

    def run(job):
        url, path = job
        return probe_endpoint(url, path, probe=probe, timeout=timeout, crictl=crictl, run_command=run_command)

    if len(primary) <= 1:
        probed = {key: run(job) for key, job in primary.items()}
    else:
        with ThreadPoolExecutor(max_workers=len(primary)) as pool:
            futures = {key: pool.submit(run, job) for key, job in primary.items()}
            probed = {key: future.result() for key, future in futures.items()}
    endpoints = []
    for url, path, key in order:
        first = probed[key]
        if first["endpoint"] == url:
            endpoints.append(first)
            continue
        entry = dict(first)
        entry.update(endpoint=url, path=path, alias_of=first["endpoint"])
        endpoints.append(entry)
    return endpoints


def _usable(entry, probe):
    if entry["alias_of"] is not None:
        return False
    return entry["cri"] is True or (not probe and entry["listening"])


def runtime_text(entry):
    """``containerd 1.7.24``, or ``runtime unknown``."""
    return " ".join(part for part in (entry.get("runtime"), entry.get("runtime_version")) if part) or "runtime unknown"


def describe(entry):
    """``unix:///run/containerd/containerd.sock (containerd 1.7.24)``."""
    return "%s (%s)" % (entry["endpoint"], runtime_text(entry))


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


def _capital(text):
    return text[0].upper() + text[1:]


def select(endpoints, preferred="", preferred_runtime=None, probe=True):
    """Return ``(endpoint URL, selected_reason)``, or raise :class:`CriSocketError` saying why none can be chosen.

    ``preferred`` is an endpoint (or empty), ``preferred_runtime`` a runtime name (or None). With both, the
    preferred endpoint is chosen and must be served by that runtime. Messages name these options.
    """
    usable = [e for e in endpoints if _usable(e, probe)]
    what = "CRI endpoints" if probe else "listening sockets (probe=false)"
    if preferred:
        url = normalize_endpoint("preferred", preferred)[0]
        entry = next((e for e in endpoints if e["endpoint"] == url), None)
        if entry is not None and (entry["cri"] is True or (not probe and entry["listening"])):
            if preferred_runtime and entry["runtime"] != preferred_runtime:
                raise CriSocketError(
                    "preferred=%s is served by %s, but preferred_runtime is %s: make them agree, or leave one of "
                    "them empty" % (url, entry["runtime"] or "an unknown runtime", preferred_runtime), endpoints)
            return url, "preferred endpoint; %s" % (
                "it answers the CRI (%s)" % runtime_text(entry) if probe
                else "it accepts connections (probe=false)")
        reason = entry["reason"] if entry is not None else "not probed"
        if not usable:
            raise CriSocketError("preferred=%s is not a usable CRI endpoint: %s. %s" % (url, reason, _none_message(endpoints)),
                                 endpoints)
        raise CriSocketError(
            "preferred=%s is not a usable CRI endpoint: %s. %s on this node: %s. Set preferred to one of them, or "
            "leave it empty to detect." % (url, reason, _capital(what), _list(usable)), endpoints)
    if preferred_runtime:
        matches = [e for e in usable if e["runtime"] == preferred_runtime]
        if len(matches) == 1:
            return matches[0]["endpoint"], "the only CRI endpoint of preferred_runtime=%s (%s)" % (
                preferred_runtime, runtime_text(matches[0]))
        if len(matches) > 1:
            raise CriSocketError(
                "preferred_runtime=%s matches several %s: %s. Set preferred to one of these endpoints." % (
                    preferred_runtime, what, _list(matches)), endpoints)
        if not usable:
            raise CriSocketError("preferred_runtime=%s: %s" % (preferred_runtime, _none_message(endpoints)), endpoints)
        raise CriSocketError(
            "preferred_runtime=%s: no CRI endpoint of that runtime on this node. %s found: %s. Set preferred_runtime "
            "to the runtime of one of them, or install and start %s." % (
                preferred_runtime, _capital(what), _list(usable), preferred_runtime), endpoints)
    if len(usable) == 1:
        checked = len([e for e in endpoints if e["alias_of"] is None])
        if probe:
            return usable[0]["endpoint"], "the only CRI endpoint on this node (%d socket%s checked)" % (
                checked, "" if checked == 1 else "s")
        return usable[0]["endpoint"], "the only listening socket (probe=false, %d checked)" % checked
    if not usable:
        raise CriSocketError(_none_message(endpoints), endpoints)
    raise CriSocketError(
        "Found multiple %s on this node: %s. kubeadm, kubelet and crictl need exactly one: set the option preferred "
        "to one of these endpoints, or preferred_runtime to the runtime to use (%s)." % (
            what, _list(usable), ", ".join(RUNTIME_NAMES)), endpoints)


def check_preferred(preferred, preferred_runtime, probe):
    """Validate the two preference options; returns ``(preferred or "", preferred_runtime or None)``."""
    preferred = "" if preferred is None else require_str("preferred", preferred, allow_empty=True).strip()
    if preferred in RUNTIME_NAMES:
        raise InputError("preferred", "%r is a runtime name, not an endpoint: give it as preferred_runtime, or set "
                                      "preferred to an endpoint such as unix:///run/containerd/containerd.sock" % preferred)
    if preferred:
        normalize_endpoint("preferred", preferred)
    if preferred_runtime in (None, ""):
        return preferred, None
    if preferred_runtime not in RUNTIME_NAMES:
        raise InputError("preferred_runtime", "must be one of %s, got %r" % (", ".join(RUNTIME_NAMES), preferred_runtime))
    if not probe:
        raise InputError("preferred_runtime", "needs probe=true: only a probe tells which runtime serves a socket")
    return preferred, preferred_runtime


def detect(candidates, extra=None, preferred="", preferred_runtime=None, probe=True, timeout=2.0, crictl=None,
           run_command=None):
    """Probe the candidates and select one; return ``(endpoints, cri_socket, selected_reason)``.

    Raises InputError (naming the option) for malformed options and :class:`CriSocketError` when no single
    endpoint can be chosen.
    """
    preferred, preferred_runtime = check_preferred(preferred, preferred_runtime, probe)
    pairs = build_candidates(candidates, extra, preferred)
    if not pairs:
        raise InputError("candidates", "candidates and extra_candidates are both empty: give at least one socket to check")
    endpoints = probe_all(pairs, probe=probe, timeout=timeout, crictl=crictl, run_command=run_command)
    cri_socket, reason = select(endpoints, preferred, preferred_runtime, probe)
    return endpoints, cri_socket, reason
