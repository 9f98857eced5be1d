# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of kubeforge.cluster.containerd_config: input checks, the merge plan, checks, migration.

Everything here works on plain data (what ``tomllib`` reads): ``plan_options`` runs once and yields the
TOML edits (``_containerd_config_toml``) plus the data the file will hold; ``verify_dump`` judges
containerd's own ``config dump`` against the request. Key paths per config version come from
``_containerd_config_schema``.
"""

from __future__ import annotations

import copy
import datetime

from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import (
    CRI_GRPC_ID,
    CRI_PLUGIN_IDS,
    CRI_V1_NAME,
    DEFAULT_PATH,
    RUNC_TYPES,
    RUNTIME_KEYS,
    ContainerdConfigError,
    dotted,
    schema_for,
    v1_full_name,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_toml import (
    RemoveItems,
    Set,
    Table,
    apply_edits,
    insert_first_key,
    loads,
    rename_tables,
    same,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    collect_secrets,
    is_secret_key,
    require_bool,
    require_dict,
    require_int,
    require_list,
    require_str,
    safe_name,
    type_name,
)

# The action plugin's argument spec. Strings, dicts and lists are taken as given ("raw") and checked by
# Request below, so that a list is never turned into the string "['a']"; bools use Ansible's conversion.
ARGUMENT_SPEC = dict(
    path=dict(type="raw", default=DEFAULT_PATH),
    sandbox_image=dict(type="raw"),
    systemd_cgroup=dict(type="bool"),
    registry_config_path=dict(type="raw"),
    runtimes=dict(type="raw"),
    default_runtime=dict(type="raw"),
    enable_cri=dict(type="bool", default=True),
    disable_cri=dict(type="bool", default=False),
    merge=dict(type="raw"),
    secret_keys=dict(type="raw", no_log=False),
    containerd_path=dict(type="raw", default="containerd"),
    validate=dict(type="bool"),
    migrate=dict(type="bool", default=False),
    backup=dict(type="bool", default=False),
)
_TOML_INT = (-(2 ** 63), 2 ** 63 - 1)


def _key_option(option, key):
    return "%s.%s" % (option, dotted((key,)))


def toml_value(option, value):
    """A value TOML can hold, checked all the way down; ``option`` names where it came from."""
    if isinstance(value, dict):
        require_dict(option, value)
        return {str(key): toml_value(_key_option(option, key), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [toml_value("%s[%d]" % (option, index), item) for index, item in enumerate(value)]
    if value is None:
        raise InputError(option, "is null, which TOML cannot hold; give a value, or leave the key out")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return require_int(option, int(value), *_TOML_INT)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(require_str(option, value, allow_empty=True))
    if isinstance(value, (datetime.date, datetime.time)):
        return value
    raise InputError(option, "must be a string, number, bool, date, list or dict, got %s" % type_name(value))


def _runtime(name, spec):
    option = _key_option("runtimes", name)
    if not isinstance(spec, dict):
        raise InputError(option, "must be a dict of runtime keys (runtime_type, options, ...), got %s" % type_name(spec))
    out = {}
    for key, value in spec.items():
        sub = _key_option(option, key)
        if key not in RUNTIME_KEYS:
            raise InputError(sub, "is not a known runtime key (known: %s); set other keys with the merge option"
                             % ", ".join(sorted(RUNTIME_KEYS)))
        kind = RUNTIME_KEYS[key]
        if kind is str:
            out[key] = str(require_str(sub, value))
        elif kind is bool:
            out[key] = require_bool(sub, value)
        elif kind is int:
            out[key] = require_int(sub, value, 0, _TOML_INT[1])
        elif kind is list:
            out[key] = require_list(sub, value, item=lambda o, v: str(require_str(o, v)))
        else:
            out[key] = toml_value(sub, value) if isinstance(value, dict) else require_dict(sub, value)
    return out


def _config_path(value):
    """containerd takes one directory or several separated by ':'; each must be absolute."""
    require_str("registry_config_path", value)
    for part in value.split(":"):
        absolute_path("registry_config_path", part)
    return str(value)


class Request:
    """The task's options, checked before anything is read or run (InputError names the option)."""

    def __init__(self, params):
        p = dict(params)
        self.path = absolute_path("path", DEFAULT_PATH if p.get("path") is None else p["path"])
        binary = "containerd" if p.get("containerd_path") is None else p["containerd_path"]
        self.containerd_path = (absolute_path("containerd_path", binary) if isinstance(binary, str) and "/" in binary
                                else safe_name("containerd_path", binary, what="command name"))
        self.sandbox_image = None if p.get("sandbox_image") is None else str(require_str("sandbox_image", p["sandbox_image"]))
        self.registry_config_path = None if p.get("registry_config_path") is None else _config_path(p["registry_config_path"])
        self.default_runtime = None if p.get("default_runtime") is None else str(require_str("default_runtime", p["default_runtime"]))
        runtimes = p.get("runtimes") or {}
        require_dict("runtimes", runtimes)
        self.runtimes = {str(name): _runtime(name, spec) for name, spec in runtimes.items()}
        self.merge = None if p.get("merge") is None else toml_value("merge", require_dict("merge", p["merge"]))
        for name in ("systemd_cgroup", "validate"):
            setattr(self, name, None if p.get(name) is None else require_bool(name, p[name]))
        for name, default in (("enable_cri", True), ("disable_cri", False), ("migrate", False), ("backup", False)):
            setattr(self, name, default if p.get(name) is None else require_bool(name, p[name]))
        self.secret_keys = tuple(str(k) for k in require_list("secret_keys", p.get("secret_keys") or [], item=require_str))
        self.secrets = collect_secrets(self.merge or {}, self.secret_keys) + collect_secrets(self.runtimes, self.secret_keys)

    def is_secret(self, key):
        return is_secret_key(key, self.secret_keys)

    def asked(self):
        """The logical options as verify_dump compares them."""
        return {name: getattr(self, name) for name in ("sandbox_image", "registry_config_path", "default_runtime",
                                                       "runtimes", "systemd_cgroup", "merge")}


# --------------------------------------------------------------------------- the merge plan


class Plan:
    """Changes to a config's plain data, recorded as TOML edits (one pass; the file text is not touched here)."""

    def __init__(self, data):
        self.data = copy.deepcopy(data)
        self.edits = []
        self.changed_keys = []

    def get(self, path, default=None):
        return get_path(self.data, path, default)

    def _changed(self, key):
        if key not in self.changed_keys:
            self.changed_keys.append(key)

    def _table(self, path, option):
        current = self.data
        for index, part in enumerate(path):
            if part not in current:
                current[part] = {}
            elif not isinstance(current[part], dict):
                raise ContainerdConfigError("%s: cannot set keys under %s: it is %s in the file, not a table"
                                            % (option, dotted(path[:index + 1]), type_name(current[part])), option=option)
            current = current[part]
        return current

    def set(self, path, value, option):
        parent = self._table(path[:-1], option)
        key = path[-1]
        if key in parent and same(parent[key], value):
            return
        if isinstance(parent.get(key), dict):
            raise ContainerdConfigError("%s: cannot set %s: it is a table in the file" % (option, dotted(path)), option=option)
        parent[key] = copy.deepcopy(value)
        self.edits.append(Set(tuple(path), value))
        self._changed(dotted(path))

    def merge(self, path, mapping, option):
        """Dicts become tables, anything else replaces the file's value."""
        for key, value in mapping.items():
            sub, sub_option = path + (key,), _key_option(option, key)
            if not isinstance(value, dict):
                self.set(sub, value, sub_option)
                continue
            existing = self.get(sub)
            if existing is not None and not isinstance(existing, dict):
                raise ContainerdConfigError("%s: is %s in the file, a table cannot be merged into it" % (sub_option, type_name(existing)),
                                            option=sub_option)
            if existing is None:
                self._table(sub, sub_option)
                self._changed(dotted(sub))
                if not value:
                    self.edits.append(Table(sub))
            self.merge(sub, value, sub_option)

    def remove_items(self, key, drop, option):
        current = self.data.get(key)
        if not isinstance(current, list):
            raise ContainerdConfigError("%s: %s must be a list in the file, found %s" % (option, key, type_name(current)), option=option)
        if any(item in drop for item in current):
            self.data[key] = [item for item in current if item not in drop]
            self.edits.append(RemoveItems((key,), tuple(drop)))
            self._changed(key)


def get_path(data, path, default=None):
    current = data
    for part in path:
        if not isinstance(current, dict) or part not in current:
            return default
        current = current[part]
    return current


def plan_options(data, request, version):
    """Apply the options to ``data`` (a config of ``version``): a Plan and warnings."""
    schema = schema_for(version)
    plan = Plan(data)
    warnings = []
    if request.merge:
        plan.merge((), request.merge, "merge")
    if request.disable_cri:
        _disable_cri(plan, version)
    elif request.enable_cri and "disabled_plugins" in plan.data:
        plan.remove_items("disabled_plugins", CRI_PLUGIN_IDS, "enable_cri")  # the Docker package ships disabled_plugins = ["cri"]
    if request.sandbox_image is not None:
        plan.set(schema.sandbox, request.sandbox_image, "sandbox_image")
    if request.registry_config_path is not None:
        plan.set(schema.config_path, request.registry_config_path, "registry_config_path")
    _runtimes(plan, schema, request)
    if request.systemd_cgroup is not None:
        _systemd_cgroup(plan, schema, request.systemd_cgroup, warnings)
    legacy_default = plan.get(schema.containerd + ("default_runtime", "runtime_type")) if version <= 2 else None
    if legacy_default:
        warnings.append(
            "%s sets the deprecated default_runtime (runtime_type %s): containerd 1.x uses it instead of "
            "default_runtime_name, and containerd 2.x drops it. Remove that table to make the runtimes take effect"
            % (dotted(schema.containerd + ("default_runtime",)), legacy_default))
    return plan, warnings


def _disable_cri(plan, version):
    """A containerd that only serves Docker: no second CRI endpoint next to cri-dockerd ("Found multiple CRI
    endpoints"). A version 1 file names the plugin "cri"; version 2+ need the full id (containerd refuses the short
    name there: "invalid disabled plugin URI"), so a short "cri" in such a file is replaced."""
    current = plan.data.get("disabled_plugins", [])
    if not isinstance(current, list):
        raise ContainerdConfigError("disable_cri: disabled_plugins must be a list in the file, found %s" % type_name(current),
                                    option="disable_cri")
    if version >= 2 and CRI_V1_NAME in current:
        plan.remove_items("disabled_plugins", (CRI_V1_NAME,), "disable_cri")
        current = plan.data["disabled_plugins"]
    wanted = CRI_V1_NAME if version == 1 else CRI_GRPC_ID
    if wanted not in current:
        plan.set(("disabled_plugins",), current + [wanted], "disable_cri")


def _runtimes(plan, schema, request):
    for name, spec in request.runtimes.items():
        path, option = schema.runtimes + (name,), _key_option("runtimes", name)
        if plan.get(path) is None and not spec.get("runtime_type"):
            raise ContainerdConfigError("%s: does not exist in %s yet: give its runtime_type (e.g. io.containerd.kata.v2)"
                                        % (option, dotted(schema.runtimes)), option=option)
        for key, value in spec.items():
            if key == "options":
                plan.merge(path + ("options",), value, _key_option(option, "options"))
            else:
                plan.set(path + (key,), value, _key_option(option, key))
    if request.default_runtime is not None:
        name = request.default_runtime
        if plan.get(schema.runtimes + (name,)) is None and name != "runc":
            raise ContainerdConfigError("default_runtime: %r is not a runtime in %s; define it under runtimes" % (name, dotted(schema.runtimes)),
                                        option="default_runtime")
        plan.set(schema.default_runtime, name, "default_runtime")


def _systemd_cgroup(plan, schema, value, warnings):
    default_name = plan.get(schema.default_runtime) or "runc"
    runtimes = plan.get(schema.runtimes) or {}
    targets = [name for name, rt in runtimes.items() if isinstance(rt, dict) and rt.get("runtime_type") in RUNC_TYPES]
    if default_name not in runtimes:
        plan.set(schema.runtimes + (default_name, "runtime_type"), RUNC_TYPES[0], "systemd_cgroup")
        targets.append(default_name)
    for name in targets:
        plan.set(schema.runtimes + (name, "options", "SystemdCgroup"), value, "systemd_cgroup")
    if schema.version <= 2 and plan.get(schema.runtime + ("systemd_cgroup",)) is True and not value:
        warnings.append(
            "%s = true is the legacy switch of the io.containerd.runtime.v1.linux shim and was left alone; "
            "runc runtimes use options.SystemdCgroup, which is now false" % dotted(schema.runtime + ("systemd_cgroup",)))


# --------------------------------------------------------------------------- checks


def registry_conflicts(data, version):
    """containerd refuses to load the CRI plugin with legacy mirrors/configs.tls plus config_path."""
    schema = schema_for(version)
    registry = get_path(data, schema.registry) or {}
    if not isinstance(registry, dict) or not registry.get("config_path"):
        return None
    mirrors = registry.get("mirrors") or {}
    tls_hosts = [host for host, conf in (registry.get("configs") or {}).items() if isinstance(conf, dict) and conf.get("tls")]
    if not mirrors and not tls_hosts:
        return None
    parts = []
    if mirrors:
        parts.append("legacy %s.mirrors (%s)" % (dotted(schema.registry), ", ".join(sorted(mirrors))))
    if tls_hosts:
        parts.append("%s.configs.<host>.tls (%s)" % (dotted(schema.registry), ", ".join(sorted(tls_hosts))))
    return (
        "%s cannot be used together with config_path = %r: containerd then refuses to load the CRI plugin "
        "(\"`mirrors` cannot be set when `config_path` is provided\") and kubelet fails with "
        "\"unknown service runtime.v1.RuntimeService\". Fix: move each mirror to %s/<registry host>/hosts.toml "
        "(server = \"https://<registry>\" plus a [host.\"<mirror url>\"] table with capabilities = [\"pull\", \"resolve\"] "
        "and ca/skip_verify for TLS) and delete the mirrors/configs tables from the config, e.g. with "
        "merge or by hand" % (" and ".join(parts), registry.get("config_path"), registry.get("config_path")))


def cri_disabled(data):
    disabled = data.get("disabled_plugins") or []
    return [p for p in disabled if p in CRI_PLUGIN_IDS]


def _subset_problems(want, have, where, is_secret):
    problems = []
    for key, value in want.items():
        path = "%s.%s" % (where, dotted((key,)))
        actual = have.get(key) if isinstance(have, dict) else None
        if isinstance(value, dict):
            if not isinstance(actual, dict):
                problems.append("%s is missing" % path)
            else:
                problems.extend(_subset_problems(value, actual, path, is_secret))
        elif not same(actual, value):
            problems.append("%s differs from the requested value" % path if is_secret(key)
                            else "%s is %r, expected %r" % (path, actual, value))
    return problems


def verify_dump(dump_text, request, file_version):
    """Compare ``containerd config dump`` with the request; return (problems, effective values)."""
    data = loads(dump_text, "the output of 'containerd config dump'")
    version = data.get("version") or 1
    schema = schema_for(version)
    problems = []
    disabled = cri_disabled(data)
    if request.disable_cri:
        if CRI_GRPC_ID not in disabled and CRI_V1_NAME not in disabled:
            problems.append("the CRI plugin is still enabled (disabled_plugins is %s)" % (data.get("disabled_plugins") or []))
    elif disabled:
        problems.append("the CRI plugin is disabled (disabled_plugins contains %s)" % ", ".join(disabled))
    conflict = registry_conflicts(data, version)
    if conflict:
        problems.append(conflict)
    effective = effective_values(data, schema)
    for option, label, key_path in (("sandbox_image", "sandbox image", schema.sandbox),
                                    ("registry_config_path", "registry config_path", schema.config_path)):
        wanted = getattr(request, option)
        if wanted is not None and effective[option] != wanted:
            problems.append("%s is %r (%s), expected %r" % (label, effective[option], dotted(key_path), wanted))
    if request.default_runtime is not None and effective["default_runtime"] != request.default_runtime:
        problems.append("default runtime is %r, expected %r" % (effective["default_runtime"], request.default_runtime))
    problems.extend(_runtime_problems(get_path(data, schema.runtimes, {}) or {}, schema, request, effective))
    if request.merge and file_version == version:
        problems.extend(p.split(".", 1)[1] for p in _subset_problems(request.merge, data, "merge", request.is_secret))
    return problems, effective


def _runtime_problems(runtimes, schema, request, effective):
    problems = []
    for name, spec in request.runtimes.items():
        if name not in runtimes:
            problems.append("runtime %r is missing from %s" % (name, dotted(schema.runtimes)))
            continue
        problems.extend(_subset_problems(spec, runtimes[name], dotted(schema.runtimes + (name,)), request.is_secret))
    if request.systemd_cgroup is not None:
        default_name = effective["default_runtime"] or "runc"
        if default_name not in runtimes:
            problems.append("default runtime %r is missing from %s" % (default_name, dotted(schema.runtimes)))
        for name, runtime in runtimes.items():
            if isinstance(runtime, dict) and runtime.get("runtime_type") in RUNC_TYPES:
                actual = get_path(runtime, ("options", "SystemdCgroup"))
                if actual is not request.systemd_cgroup:
                    problems.append("runtime %r has SystemdCgroup = %r, expected %r" % (name, actual, request.systemd_cgroup))
    return problems


def effective_values(data, schema):
    runtimes = get_path(data, schema.runtimes, {}) or {}
    default_name = get_path(data, schema.default_runtime)
    default_rt = runtimes.get(default_name or "runc") or {}
    return {
        "cri_enabled": not cri_disabled(data),
        "sandbox_image": get_path(data, schema.sandbox),
        "registry_config_path": get_path(data, schema.config_path),
        "default_runtime": default_name,
        "systemd_cgroup": get_path(default_rt, ("options", "SystemdCgroup")),
        "runtimes": {name: (rt or {}).get("runtime_type") for name, rt in runtimes.items() if isinstance(rt, dict)},
    }


# --------------------------------------------------------------------------- version handling


def detect_version(data):
    """The config version a file declares; None when it has no ``version`` key (containerd: version 1)."""
    if "version" not in data:
        return None
    value = data["version"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainerdConfigError("the 'version' key must be an integer, found %s" % type_name(value))
    return value


def has_plugin_tables(data):
    plugins = data.get("plugins")
    return isinstance(plugins, dict) and len(plugins) > 0


def _renamed_plugin_lists(data):
    edits = []
    for key in ("disabled_plugins", "required_plugins"):
        values = data.get(key)
        if isinstance(values, list):
            renamed = [v1_full_name(p) if isinstance(p, str) else p for p in values]
            if renamed != values:
                data[key] = renamed
                edits.append(Set((key,), renamed))
    return edits


def upgrade_unversioned(text, data, target):
    """A file without ``version`` and without plugin tables means the same in every version: add the header.

    Returns (text, data)."""
    data = copy.deepcopy(data)
    text = apply_edits(text, _renamed_plugin_lists(data), data)
    data["version"] = target
    return insert_first_key(text, "version", target), data


def migrate_v1_to_v2(text, data):
    """Rename short plugin names to their full ids (as containerd's v1 migration does), keeping comments.

    Returns (text, data)."""
    plugins = data.get("plugins") if isinstance(data.get("plugins"), dict) else {}
    renamed = {}
    for name, table in plugins.items():
        full = v1_full_name(name)
        if full != name and full in plugins:
            raise ContainerdConfigError(
                "cannot migrate the version 1 file: it has both plugins.%s and plugins.\"%s\"; merge them by hand" % (name, full))
        renamed[full] = table
    new = copy.deepcopy(data)
    if plugins:
        new["plugins"] = copy.deepcopy(renamed)

    def rename(path):
        if len(path) >= 2 and path[0] == "plugins":
            return path[:1] + (v1_full_name(path[1]),) + path[2:]
        return path

    text = rename_tables(text, rename, new,
                         "cannot migrate the version 1 file automatically: some plugins tables are written as inline tables "
                         "or dotted keys; give them [plugins.\"<full id>\"] headers by hand (or set migrate: false)")
    edits = _renamed_plugin_lists(new)
    if "version" in new:
        edits.append(Set(("version",), 2))
    new["version"] = 2
    text = apply_edits(text, edits, dict(new) if "version" in data else {k: v for k, v in new.items() if k != "version"})
    if "version" not in data:
        text = insert_first_key(text, "version", 2)
    return text, new
