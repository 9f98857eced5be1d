# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the node's container runtime is configured with, as the doctor needs it (read-only).

containerd: the effective configuration from ``containerd config dump`` (which merges imports and
defaults), else ``/etc/containerd/config.toml``; read with ``tomllib`` where the node's Python has it,
otherwise with the small TOML subset reader below (tables, strings, booleans, integers, arrays of
strings: all the doctor reads). Deliberately not the ``containerd_config`` module utils, which edit files
and keep comments - this only needs four values, on nodes whose Python may be older.

Docker: ``docker info`` for the cgroup driver; cri-dockerd: its command line (network plugin, pod infra image).
"""

from __future__ import annotations

import json
import re

try:
    import tomllib
except ImportError:  # Python < 3.11 on the node
    tomllib = None

CRI_PLUGIN_IDS = ("cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images")
CONTAINERD_CONFIG = "/etc/containerd/config.toml"


class TomlError(ValueError):
    pass


def parse_toml(text):
    """Parse TOML with tomllib, or the subset the doctor needs."""
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TomlError(str(exc)) from None
    return _parse_subset(text)


def _split_key(text):
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_\-]+)', text)
    return [quoted or bare for quoted, bare in parts]


def _value(text, line_number):
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return json.loads(text)
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.match(r"^[+-]?\d+$", text):
        return int(text)
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip().rstrip(",")
        return [_value(item, line_number) for item in re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^,\s]+', inner)] if inner else []
    if text.startswith("{") and text.endswith("}"):
        return {}
    raise TomlError("line %d: value %r is outside the TOML subset this reader knows" % (line_number, text))


def _strip_comment(line):
    """The line without a trailing # comment (a # inside a quoted string stays)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote and line[index - 1] != "\\":
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:index].strip()
    return line.strip()


def _parse_subset(text):
    data = {}
    table = data
    pending = None  # (target dict, key, text so far) of a multi-line array
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if pending is not None:
            target, key, so_far = pending
            so_far += " " + line
            if line.endswith("]"):
                target[key] = _value(so_far, number)
                pending = None
            else:
                pending = (target, key, so_far)
            continue
        if not line:
            continue
        if line.startswith("[["):
            raise TomlError("line %d: arrays of tables are outside the subset" % number)
        if line.startswith("["):
            table = data
            for key in _split_key(line.strip("[]")):
                table = table.setdefault(key, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise TomlError("line %d: expected key = value" % number)
        keys = _split_key(key)
        target = table
        for part in keys[:-1]:
            target = target.setdefault(part, {})
        value = value.strip()
        if value.startswith("[") and not value.endswith("]"):
            pending = (target, keys[-1], value)
            continue
        target[keys[-1]] = _value(value, number)
    return data


def _get(data, *keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def containerd_view(text, source):
    """``{"source", "version", "cri_disabled", "disabled_plugins", "sandbox_image", "systemd_cgroup"}`` of a config."""
    data = parse_toml(text)
    version = data.get("version", 1)
    disabled = [p for p in data.get("disabled_plugins") or [] if isinstance(p, str)]
    plugins = data.get("plugins") or {}
    if version >= 3:
        sandbox = _get(plugins, "io.containerd.cri.v1.images", "pinned_images", "sandbox")
        runtime = _get(plugins, "io.containerd.cri.v1.runtime", "containerd")
    elif version == 2:
        sandbox = _get(plugins, "io.containerd.grpc.v1.cri", "sandbox_image")
        runtime = _get(plugins, "io.containerd.grpc.v1.cri", "containerd")
    else:
        sandbox = _get(plugins, "cri", "sandbox_image")
        runtime = _get(plugins, "cri", "containerd")
    default_name = _get(runtime, "default_runtime_name") or "runc"
    systemd = _get(runtime, "runtimes", default_name, "options", "SystemdCgroup")
    if systemd is None and version < 2:
        systemd = _get(plugins, "cri", "systemd_cgroup")
    return {
        "source": source, "version": version, "disabled_plugins": disabled,
        "cri_disabled": [p for p in disabled if p in CRI_PLUGIN_IDS],
        "sandbox_image": sandbox, "systemd_cgroup": bool(systemd), "default_runtime": default_name,
    }


def read_containerd(host):
    """The containerd view from ``containerd config dump`` or the config file; None when containerd is absent."""
    dumped = host.command(["containerd", "config", "dump"])
    if dumped is not None and dumped[0] == 0 and dumped[1].strip():
        return containerd_view(dumped[1], "containerd config dump")
    text = host.read(CONTAINERD_CONFIG)
    if text is None:
        return None if dumped is None else {"source": "containerd config dump", "error": " ".join((dumped[2] or "").split())[:300]}
    try:
        view = containerd_view(text, CONTAINERD_CONFIG)
    except TomlError as exc:
        return {"source": CONTAINERD_CONFIG, "error": "not valid TOML: %s" % exc}
    if dumped is not None and dumped[0] != 0:
        view["dump_error"] = " ".join((dumped[2] or dumped[1] or "").split())[:300]
    return view


def docker_cgroup_driver(host):
    """``systemd``/``cgroupfs`` from ``docker info``; None when docker is absent or not answering."""
    answer = host.command(["docker", "info", "--format", "{{.CgroupDriver}}"])
    if answer is None or answer[0] != 0:
        return None
    return answer[1].strip() or None


def flag_value(argv, flag):
    """The value of ``--flag=value`` or ``--flag value`` in an argv; None when absent."""
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def kubelet_cgroup_driver(host):
    """``cgroupDriver`` of an existing /var/lib/kubelet/config.yaml (written by kubeadm), else None."""
    text = host.read("/var/lib/kubelet/config.yaml")
    match = re.search(r"^cgroupDriver:\s*['\"]?([A-Za-z]+)", text or "", re.MULTILINE)
    return match.group(1) if match else None
