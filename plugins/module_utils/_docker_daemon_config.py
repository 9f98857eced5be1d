# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge settings into Docker's ``daemon.json`` as data, for ``kubeforge.cluster.docker_daemon_config``.

Stdlib only (it runs on the node). The work is split so each part is tested without a host:

- ``parse_document`` reads the file strictly (an object, no duplicate keys) and refuses anything else untouched;
- ``merge`` applies the request (deep-merged settings, ``exec-opts`` entries by option name, removals) to a copy;
- ``value_problems`` checks the value types dockerd needs (e.g. every ``log-opts`` value is a string);
- ``known_keys``/``flag_keys`` turn ``dockerd --help`` and a running dockerd's command line into daemon.json keys, for
  the check dockerd itself does at start (an unknown key, or a key also given as a flag, stops dockerd);
- ``apply_reload_rules`` says whether the change needs a restart or dockerd reads it on SIGHUP (``systemctl reload``);
- ``run`` orders it all around a ``NodeOps`` seam (read, run, write), validating with ``dockerd --validate`` where the
  installed dockerd has it (Docker 23 and later) and with the checks above otherwise.
"""

from __future__ import annotations

import copy
import json
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    collect_secrets,
    mask_secrets,
    mask_text,
    require_dict,
    require_list,
    require_str,
)

# Keys dockerd applies on SIGHUP (daemon/reload.go and reload_unix.go of Docker 20.10 to 28: "These are the settings
# that Reload changes"). Every other key is read only at start. Seen on Debian's dockerd 20.10: registry-mirrors and
# insecure-registries show in `docker info` after `systemctl reload docker`, log-driver does not.
RELOADABLE_KEYS = frozenset((
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts",
    "shutdown-timeout", "insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts", "runtimes",
    "default-runtime", "default-shm-size",
))

# dockerd flags whose daemon.json key is not the long flag name (lists are plural in the file), and short flags.
FLAG_ALIASES = {
    "H": "hosts", "host": "hosts", "D": "debug", "G": "group", "l": "log-level", "p": "pidfile", "b": "bridge",
    "g": "data-root", "graph": "data-root", "insecure-registry": "insecure-registries",
    "registry-mirror": "registry-mirrors", "exec-opt": "exec-opts", "log-opt": "log-opts", "storage-opt": "storage-opts",
    "label": "labels", "dns-opt": "dns-opts", "add-runtime": "runtimes", "authorization-plugin": "authorization-plugins",
    "default-ulimit": "default-ulimits", "cluster-store-opt": "cluster-store-opts",
    "node-generic-resource": "node-generic-resources", "default-address-pool": "default-address-pools",
    "containerd-plugins-namespace": "containerd-plugin-namespace",
}
# daemon.json keys without a flag of their own in the dockerd versions that lack --validate (before 23; "proxies"
# came with 23, so it is not among them).
JSON_ONLY_KEYS = frozenset(("features", "builder", "runtimes", "default-address-pools", "log-opts"))
# Flags that are not configuration (never keys of daemon.json).
NON_CONFIG_FLAGS = frozenset(("config-file", "help", "h", "version", "v", "validate"))

# Value types dockerd decodes daemon.json into (a wrong type stops dockerd at start).
LIST_OF_STR = ("exec-opts", "storage-opts", "labels", "dns", "dns-opts", "dns-search", "insecure-registries",
               "registry-mirrors", "allow-nondistributable-artifacts", "authorization-plugins", "hosts",
               "node-generic-resources")
STR_KEYS = ("log-driver", "storage-driver", "data-root", "exec-root", "log-level", "cgroup-parent", "default-runtime",
            "group", "pidfile", "bridge", "bip", "userns-remap", "seccomp-profile", "containerd", "init-path")
BOOL_KEYS = ("debug", "live-restore", "experimental", "iptables", "ip6tables", "ip-forward", "ip-masq", "icc",
             "ipv6", "userland-proxy", "selinux-enabled", "no-new-privileges", "init", "raw-logs", "tls", "tlsverify")
INT_KEYS = ("max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts", "shutdown-timeout", "mtu",
            "oom-score-adjust")
CGROUP_DRIVERS = ("systemd", "cgroupfs")
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*)@")


class DaemonConfigError(Exception):
    """A request or a file that cannot be merged safely; the message names the file or key and the fix."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


# --------------------------------------------------------------------------- reading and writing


def parse_document(text, path):
    """The JSON object in ``text``; an empty or blank file is ``{}``. Anything else is refused, naming the place."""
    if text is None or not text.strip():
        return {}

    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise DaemonConfigError("%s sets %r twice; dockerd would use only one of them. Keep one and run again "
                                        "(the file was left untouched)" % (path, key))
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise DaemonConfigError("%s is not valid JSON at line %d column %d (%s); dockerd cannot read it either. Fix the file "
                                "by hand, then run again (it was left untouched)" % (path, exc.lineno, exc.colno, exc.msg)) from None
    except ValueError as exc:
        raise DaemonConfigError("%s is not valid JSON (%s); dockerd cannot read it either. Fix the file by hand, then run "
                                "again (it was left untouched)" % (path, exc)) from None
    if not isinstance(data, dict):
        raise DaemonConfigError("%s must hold a JSON object ({...}), it holds a %s; fix it by hand (it was left untouched)"
                                % (path, type(data).__name__))
    return data


def render(data):
    """The file's text: two-space indentation, keys in the order they have, a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- the request


def validate_request(settings, exec_opts, remove):
    """Type checks of the options; returns them normalised (empty dicts and lists for None)."""
    settings = require_dict("settings", settings) if settings is not None else {}
    exec_opts = require_dict("exec_opts", exec_opts) if exec_opts is not None else {}
    for name, value in exec_opts.items():
        if "=" in name:
            raise InputError("exec_opts", "%r: give the option name as the key and its value as the value, e.g. "
                             "{'native.cgroupdriver': 'systemd'}" % name)
        require_str("exec_opts.%s" % name, value)
    if "exec-opts" in settings and exec_opts:
        raise InputError("settings", "sets exec-opts as a whole and exec_opts merges entries into it: use one of them")
    remove = require_list("remove", remove if remove is not None else [], item=require_str)
    clash = sorted(set(remove) & (set(settings) | ({"exec-opts"} if exec_opts else set())))
    if clash:
        raise InputError("remove", "%s is also set by this task; a key is either set or removed" % ", ".join(clash))
    return settings, exec_opts, remove


def _deep_merge(base, overlay):
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _exec_opt_name(entry):
    return entry.split("=", 1)[0].strip().lower() if isinstance(entry, str) else None


def merge_exec_opts(current, wanted):
    """``current`` (the file's exec-opts list) with each ``name=value`` of ``wanted`` replacing the entry of that name
    in place (duplicates of it dropped) or appended; other entries stay."""
    result = []
    placed = set()
    for entry in current or []:
        name = _exec_opt_name(entry)
        match = next((key for key in wanted if key.lower() == name), None)
        if match is None:
            result.append(entry)
        elif match not in placed:
            result.append("%s=%s" % (match, wanted[match]))
            placed.add(match)
    result.extend("%s=%s" % (key, value) for key, value in wanted.items() if key not in placed)
    return result


def merge(current, settings, exec_opts, remove):
    """The new document (a copy): ``settings`` deep-merged (dicts merge, lists and scalars replace), ``exec_opts``
    merged into ``exec-opts`` by option name, ``remove`` keys deleted. The file's key order is kept."""
    data = _deep_merge(current, settings)
    if exec_opts:
        existing = data.get("exec-opts", [])
        if not isinstance(existing, list):
            raise DaemonConfigError("exec-opts in the file is a %s, not a list of strings; fix it by hand" % type(existing).__name__)
        data["exec-opts"] = merge_exec_opts(existing, exec_opts)
    for key in remove:
        data.pop(key, None)
    return data


MISSING = object()


def changed_keys(before, after):
    return sorted(key for key in set(before) | set(after) if before.get(key, MISSING) != after.get(key, MISSING))


def apply_reload_rules(keys):
    """(restart_required, reload_required) for a change of the top-level ``keys``."""
    if not keys:
        return False, False
    restart = any(key not in RELOADABLE_KEYS for key in keys)
    return restart, not restart


# --------------------------------------------------------------------------- checks


def value_problems(data):
    """What dockerd would refuse in ``data`` because of a value's type, one message per key."""
    problems = []
    for key, value in data.items():
        if key in LIST_OF_STR and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append("%s must be a list of strings, got %s" % (key, json.dumps(value)))
        elif key in STR_KEYS and not isinstance(value, str):
            problems.append("%s must be a string, got %s" % (key, json.dumps(value)))
        elif key in BOOL_KEYS and not isinstance(value, bool):
            problems.append("%s must be true or false, got %s" % (key, json.dumps(value)))
        elif key in INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append("%s must be an integer, got %s" % (key, json.dumps(value)))
        elif key == "log-opts":
            if not isinstance(value, dict):
                problems.append("log-opts must be an object of strings, got %s" % json.dumps(value))
            else:
                for opt, setting in value.items():
                    if not isinstance(setting, str):
                        problems.append("log-opts.%s must be a string (dockerd refuses %s; write \"%s\")"
                                        % (opt, json.dumps(setting), setting if not isinstance(setting, bool) else str(setting).lower()))
        elif key == "data-root" and isinstance(value, str) and not value.startswith("/"):
            problems.append("data-root must be an absolute path, got %r" % value)
    for entry in data.get("exec-opts", []) if isinstance(data.get("exec-opts"), list) else []:
        if isinstance(entry, str) and _exec_opt_name(entry) == "native.cgroupdriver":
            driver = entry.split("=", 1)[1].strip() if "=" in entry else ""
            if driver not in CGROUP_DRIVERS:
                problems.append("exec-opts native.cgroupdriver must be systemd or cgroupfs, got %r" % driver)
    for key in ("registry-mirrors",):
        for mirror in data.get(key, []) if isinstance(data.get(key), list) else []:
            if isinstance(mirror, str) and not re.match(r"^https?://[^/\s]+", mirror):
                problems.append("%s entry %r must be an http:// or https:// URL" % (key, mirror))
    return problems


_FLAG_RE = re.compile(r"^\s+(?:-(\w),\s+)?--([a-z0-9][a-z0-9-]*)", re.MULTILINE)


def key_of_flag(flag):
    return FLAG_ALIASES.get(flag, flag)


def known_keys(help_text):
    """The keys the dockerd whose ``--help`` output this is accepts in daemon.json: its long flag names and their file
    names (dockerd looks a key up as a flag first, then as a list option's plural name)."""
    keys = set(JSON_ONLY_KEYS)
    for match in _FLAG_RE.finditer(help_text):
        flag = match.group(2)
        if flag not in NON_CONFIG_FLAGS:
            keys.update((flag, key_of_flag(flag)))
    return keys


def flag_name_warnings(data, path):
    """Keys spelled like a list flag (``registry-mirror``): dockerd accepts them, since they are flag names, but reads
    the value only under the file's plural name (``registry-mirrors``), so it is silently ignored."""
    return ["%s sets %s, the command-line flag's name: dockerd accepts it but ignores the value; the daemon.json key is %s"
            % (path, key, FLAG_ALIASES[key]) for key in sorted(data) if len(key) > 1 and FLAG_ALIASES.get(key, key) != key]


def flag_keys(argv):
    """The daemon.json keys given as flags on a dockerd command line (``argv`` without the program)."""
    keys = set()
    for arg in argv:
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if not name or name in NON_CONFIG_FLAGS:
            continue
        if not arg.startswith("--") and len(name) > 1:  # -H fd:// is one flag; -Dl would be two (dockerd never gets it)
            name = name[0]
        keys.add(key_of_flag(name))
    return keys


# --------------------------------------------------------------------------- secrets


def secrets_of(*documents):
    """Secret strings anywhere in the documents: values under secret keys (SECRET_KEYS) and the credentials of URLs
    such as ``proxies.http-proxy = http://user:password@proxy:3128``."""
    found = set()
    for data in documents:
        found.update(collect_secrets(data))
        for text in _strings(data):
            match = _URL_USERINFO.match(text)
            if match:
                found.add(match.group(1))
                found.add(match.group(1).partition(":")[2])
    return sorted(secret for secret in found if secret)


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def masked(data, secrets):
    """``data`` as it may be shown: secret keys' values and URL credentials replaced by MASK."""
    return json.loads(mask_text(json.dumps(mask_secrets(data)), secrets))


# --------------------------------------------------------------------------- the node


class NodeOps:
    """What ``run`` needs from the node; the module passes a real one, tests a fake."""

    def read(self, path):  # -> bytes or None
        raise NotImplementedError

    def dockerd(self):  # -> path of the dockerd binary or None
        raise NotImplementedError

    def run(self, argv):  # -> (rc, stdout, stderr)
        raise NotImplementedError

    def running_dockerd_args(self):  # -> argv (without the program) of a running dockerd, or None
        raise NotImplementedError

    def candidate(self, path, text):  # -> path of a private temporary copy of text next to path (removed by cleanup)
        raise NotImplementedError

    def write(self, path, text, expected, mode, backup):  # -> backup file or None
        raise NotImplementedError

    def hide(self, secrets):  # keep these strings out of every output
        pass

    def cleanup(self):
        pass


def _stderr_line(stderr):
    lines = [line for line in (stderr or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def validate_with_dockerd(ops, dockerd, data, path, requested_keys, warnings):
    """Validate ``data`` with the node's dockerd; returns how it was validated."""
    candidate = ops.candidate(path, render(data))
    rc, _out, err = ops.run([dockerd, "--validate", "--config-file", candidate])
    if rc == 0:
        return "dockerd --validate"
    if "unknown flag" not in (err or "") or "validate" not in (err or ""):
        raise DaemonConfigError("dockerd --validate refuses the merged %s: %s; nothing was written"
                                % (path, _stderr_line(err).replace(candidate, path)), rc=rc, stderr=err)
    # Docker before 23 has no --validate: check the keys against the flags of this dockerd
    rc, out, err = ops.run([dockerd, "--help"])
    if rc != 0 or "--config-file" not in out:
        warnings.append("%s: 'dockerd --help' did not list its flags (rc %s), so only the value types were checked" % (path, rc))
        return "value types only"
    unknown = sorted(set(data) - known_keys(out))
    added = [key for key in unknown if key in requested_keys]
    if added:
        raise DaemonConfigError("%s: this dockerd has no configuration key %s (it would refuse to start); check the spelling "
                                "against 'dockerd --help'. Nothing was written" % (path, ", ".join(added)))
    if unknown:
        warnings.append("%s has keys this dockerd does not know: %s; dockerd refuses to start with them (left as they are)"
                        % (path, ", ".join(unknown)))
    return "dockerd --help keys and value types (this dockerd has no --validate)"


def run(params, ops, check_mode=False):
    """Merge, check, validate and (unless ``check_mode``) write; returns the module result (raises DaemonConfigError)."""
    path = params["path"]
    settings, exec_opts, remove = validate_request(params.get("settings"), params.get("exec_opts"), params.get("remove"))
    raw = ops.read(path)
    try:
        text = raw.decode("utf-8") if raw is not None else None
    except UnicodeDecodeError:
        raise DaemonConfigError("%s is not UTF-8 text; fix it by hand (it was left untouched)" % path) from None
    current = parse_document(text, path)
    merged = merge(current, settings, exec_opts, remove)
    secrets = secrets_of(current, merged, settings)
    ops.hide(secrets)
    keys = changed_keys(current, merged)
    restart, reload = apply_reload_rules(keys)
    result = dict(changed=bool(keys), path=path, changed_keys=keys, restart_required=restart, reload_required=reload,
                  daemon_action=daemon_action(keys), config=masked(merged, secrets), validated_with="not needed (no change)")
    warnings = []
    result["warnings"] = warnings
    if not keys:
        return result

    warnings.extend(flag_name_warnings(merged, path))
    problems = value_problems(merged)
    if problems:
        raise DaemonConfigError("the merged %s would stop dockerd: %s; nothing was written" % (path, "; ".join(problems)))
    argv = ops.running_dockerd_args()
    if argv is not None:
        both = sorted(flag_keys(argv) & set(merged))
        if both:
            raise DaemonConfigError(
                "the running dockerd gets %s as command-line flags (its systemd unit or /etc/default/docker), so %s must "
                "not set them too: dockerd refuses to start when a setting is in both places. Remove %s from the "
                "request (or from the file), or the flags from the unit. Nothing was written"
                % (", ".join(both), path, ", ".join(both)))
    requested = set(settings) | ({"exec-opts"} if exec_opts else set())
    dockerd = ops.dockerd() if params.get("validate", True) else None
    if dockerd:
        result["validated_with"] = validate_with_dockerd(ops, dockerd, merged, path, requested, warnings)
    elif params.get("validate", True):
        warnings.append("%s: no dockerd binary on the node (%s), so only the value types were checked"
                        % (path, params.get("dockerd_path") or "dockerd"))
        result["validated_with"] = "value types only"
    else:
        result["validated_with"] = "value types only (validate=false)"

    before = render(masked(current, secrets)) if raw is not None else ""
    result["diff"] = {"before_header": path, "after_header": path, "before": before, "after": render(masked(merged, secrets))}
    if not check_mode:
        mode = 0o600 if secrets else 0o644
        backup = ops.write(path, render(merged), raw if raw is not None else False, mode, params.get("backup", False))
        if backup:
            result["backup_file"] = backup
    return result


def daemon_action(keys):
    """What dockerd needs after a change of ``keys``, in words."""
    start_only = [key for key in keys if key not in RELOADABLE_KEYS]
    if start_only:
        return "restart: dockerd reads %s only at start" % ", ".join(start_only)
    if keys:
        return "reload: dockerd applies %s on SIGHUP (systemctl reload docker)" % ", ".join(keys)
    return "none"
