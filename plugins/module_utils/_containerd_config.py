# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge options into a containerd ``config.toml`` without losing anything else.

Pure functions (no AnsibleModule): parse with tomlkit (comments and order kept), detect the
config version, map each logical option to the key path of that version, apply, check, and
verify a ``containerd config dump`` against what was asked. ``run()`` orchestrates one task
through a small "node operations" object, implemented by the action plugin (remote node,
merge on the controller) and by the module's ``main()`` (everything on the node).

Config versions (containerd ``cmd/containerd/server/config``):
  1  no ``version`` key; short plugin names (``plugins.cri``); removed in containerd 2.0
     (2.x ignores the CRI keys of such a file with only a warning).
  2  containerd 1.3 - 1.7: ``plugins."io.containerd.grpc.v1.cri"``.
  3  containerd 2.0 - 2.2: CRI split into ``io.containerd.cri.v1.images`` and
     ``io.containerd.cri.v1.runtime``; the sandbox image is ``pinned_images.sandbox``.
  4  containerd 2.3+: CRI paths as in 3; grpc/ttrpc/debug/metrics moved into server plugins.
"""

from __future__ import annotations

import copy
import re

try:
    import tomlkit
    from tomlkit.exceptions import ParseError as _TomlParseError
    from tomlkit.items import String as _TomlString
    from tomlkit.items import StringType as _TomlStringType
    HAS_TOMLKIT = True
    TOMLKIT_IMPORT_ERROR = None
except ImportError as _exc:  # bare node: the module reports this clearly, nothing fails at import time
    tomlkit = None
    _TomlParseError = _TomlString = _TomlStringType = None
    HAS_TOMLKIT = False
    TOMLKIT_IMPORT_ERROR = _exc

try:  # fast reader for data comparisons (Python 3.11+); tomlkit's unwrap() elsewhere
    import tomllib as _tomllib
except ImportError:
    _tomllib = None

DEFAULT_PATH = "/etc/containerd/config.toml"
MAX_KNOWN_VERSION = 4

CRI_V1_NAME = "cri"
CRI_GRPC_ID = "io.containerd.grpc.v1.cri"
CRI_IMAGES_ID = "io.containerd.cri.v1.images"
CRI_RUNTIME_ID = "io.containerd.cri.v1.runtime"
# Disabling any of these leaves kubelet without a working CRI ("unknown service runtime.v1...").
CRI_PLUGIN_IDS = (CRI_V1_NAME, CRI_GRPC_ID, CRI_IMAGES_ID, CRI_RUNTIME_ID)

# containerd's own v1 -> v2 renaming of short plugin names (v1MigratePluginName).
V1_PLUGIN_NAMES = {
    "cri": CRI_GRPC_ID,
    "cgroups": "io.containerd.monitor.v1.cgroups",
    "linux": "io.containerd.runtime.v1.linux",
    "scheduler": "io.containerd.gc.v1.scheduler",
    "bolt": "io.containerd.metadata.v1.bolt",
    "task": "io.containerd.runtime.v2.task",
    "opt": "io.containerd.internal.v1.opt",
    "restart": "io.containerd.internal.v1.restart",
    "tracing": "io.containerd.internal.v1.tracing",
    "otlp": "io.containerd.tracing.processor.v1.otlp",
    "aufs": "io.containerd.snapshotter.v1.aufs",
    "btrfs": "io.containerd.snapshotter.v1.btrfs",
    "devmapper": "io.containerd.snapshotter.v1.devmapper",
    "native": "io.containerd.snapshotter.v1.native",
    "overlayfs": "io.containerd.snapshotter.v1.overlayfs",
    "zfs": "io.containerd.snapshotter.v1.zfs",
}

RUNC_TYPES = ("io.containerd.runc.v2", "io.containerd.runc.v1")

RUNTIME_KEYS = {
    "runtime_type": str,
    "runtime_path": str,
    "options": dict,
    "pod_annotations": list,
    "container_annotations": list,
    "privileged_without_host_devices": bool,
    "privileged_without_host_devices_all_devices_allowed": bool,
    "base_runtime_spec": str,
    "cni_conf_dir": str,
    "cni_max_conf_num": int,
    "snapshotter": str,
    "sandboxer": str,
    "sandbox_mode": str,
    "io_type": str,
    "cgroup_writable": bool,
}

OPTION_NAMES = ("sandbox_image", "systemd_cgroup", "registry_config_path", "runtimes", "default_runtime")


class ContainerdConfigError(Exception):
    """A failure the user can act on; ``extra`` goes into the task result."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def argument_spec():
    """The options shared by the module (node-side) and the action plugin (controller-side)."""
    return dict(
        path=dict(type="path", default=DEFAULT_PATH),
        sandbox_image=dict(type="str"),
        systemd_cgroup=dict(type="bool"),
        registry_config_path=dict(type="str"),
        runtimes=dict(type="dict"),
        default_runtime=dict(type="str"),
        enable_cri=dict(type="bool", default=True),
        disable_cri=dict(type="bool", default=False),
        merge=dict(type="dict"),
        containerd_path=dict(type="str", default="containerd"),
        validate=dict(type="bool"),
        migrate=dict(type="bool", default=False),
        backup=dict(type="bool", default=False),
    )


def require_tomlkit():
    if not HAS_TOMLKIT:
        raise ContainerdConfigError(
            "the Python library tomlkit is required where the merge runs (%s); install it there, e.g. "
            "'python3 -m pip install tomlkit' or the distribution package python3-tomlkit" % (TOMLKIT_IMPORT_ERROR,))


# --------------------------------------------------------------------------- schema


class Schema:
    """Key paths of the logical options for one config version."""

    def __init__(self, version, images, runtime, sandbox_key):
        self.version = version
        self.images = images
        self.runtime = runtime
        self.sandbox = images + sandbox_key
        self.registry = images + ("registry",)
        self.config_path = self.registry + ("config_path",)
        self.containerd = runtime + ("containerd",)
        self.runtimes = self.containerd + ("runtimes",)
        self.default_runtime = self.containerd + ("default_runtime_name",)

    def describe(self):
        return {
            "sandbox_image": dotted(self.sandbox),
            "registry_config_path": dotted(self.config_path),
            "runtimes": dotted(self.runtimes),
            "default_runtime": dotted(self.default_runtime),
        }


def schema_for(version):
    if version == 1:
        cri = ("plugins", CRI_V1_NAME)
        return Schema(1, cri, cri, ("sandbox_image",))
    if version == 2:
        cri = ("plugins", CRI_GRPC_ID)
        return Schema(2, cri, cri, ("sandbox_image",))
    if version in (3, 4):
        return Schema(version, ("plugins", CRI_IMAGES_ID), ("plugins", CRI_RUNTIME_ID), ("pinned_images", "sandbox"))
    raise ContainerdConfigError(
        "containerd config version %r is not known to this module (it knows 1 to %d); "
        "update kubeforge.cluster or write the file with a known version" % (version, MAX_KNOWN_VERSION))


def dotted(path):
    out = []
    for part in path:
        out.append(part if re.match(r"^[A-Za-z0-9_-]+$", part) else '"%s"' % part)
    return ".".join(out)


def binary_config_version(version_output):
    """Highest config version a containerd binary writes, from ``containerd --version`` output."""
    fields = (version_output or "").split()
    candidates = fields[2:3] + fields
    for field in candidates:
        match = re.match(r"^v?(\d+)\.(\d+)", field)
        if match:
            major, minor = int(match.group(1)), int(match.group(2))
            if major < 2:
                return 2, "%d.%d" % (major, minor)
            if major == 2 and minor < 3:
                return 3, "%d.%d" % (major, minor)
            return 4, "%d.%d" % (major, minor)
    return None, None


# --------------------------------------------------------------------------- TOML helpers


def parse(text, source="config.toml"):
    require_tomlkit()
    try:
        return tomlkit.parse(text)
    except _TomlParseError as exc:
        raise ContainerdConfigError(
            "%s is not valid TOML (line %s, column %s): %s. Fix the file by hand; nothing was changed"
            % (source, exc.line, exc.col, exc), line=exc.line, column=exc.col) from None


def plain(value):
    """tomlkit items -> plain Python data."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def get_path(data, path, default=None):
    cur = data
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def detect_version(doc):
    """The config version a file declares; None when it has no ``version`` key (containerd: version 1)."""
    if "version" not in doc:
        return None
    value = plain(doc["version"])
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainerdConfigError("the 'version' key must be an integer, found %r" % (value,))
    return value


def loads(text, source="config.toml"):
    """TOML text -> plain data (tomllib when available: tomlkit's parser is ~20x slower)."""
    if _tomllib is not None:
        try:
            return _tomllib.loads(text)
        except _tomllib.TOMLDecodeError as exc:
            parse(text, source)  # tomlkit's error names line and column
            raise ContainerdConfigError("%s is not valid TOML: %s. Nothing was changed" % (source, exc)) from None
    return plain(parse(text, source))


def _toml_value(old, value):
    """Keep the quoting style of an existing string (containerd 2.x writes 'literal' strings)."""
    if (isinstance(value, str) and isinstance(old, _TomlString) and old._t == _TomlStringType.SLL
            and "'" not in value and "\n" not in value):
        return tomlkit.string(value, literal=True)
    return value


class Editor:
    """Edits a tomlkit document while keeping a plain-data mirror of it.

    Reads go to the mirror (tomlkit rebuilds a proxy for every access to a table that is split over
    several places in the file); each table of the document is resolved once and cached for writes.
    ``doc`` is a tomlkit document, or None for a dry run on ``data`` only; with ``route`` it is the
    head of the file and ``route(path)`` gives the section document a table is edited in (see
    ``partial_apply``). ``changes`` lists the dotted paths written; ``touched`` the tables written
    into or given a new sub-table.
    """

    def __init__(self, doc, data=None, route=None):
        # route: partial documents (see partial_apply): doc is the head, route(path) the document
        # a table path is edited in
        self.route = route
        self.partial = route is not None
        self.scalar_root = self.table_root = doc
        self.doc = doc
        self.data = data if data is not None else loads(doc.as_string(), "the configuration")
        self.tables = {}
        self.changes = []
        self.touched = set()

    def get(self, path, default=None):
        return get_path(self.data, path, default)

    def _mirror(self, path):
        cur = self.data
        for part in path:
            cur = cur[part]
        return cur

    def table(self, path):
        """The tomlkit table at ``path``, created (with its parents) when missing."""
        path = tuple(path)
        if path in self.tables:
            return self.tables[path]
        mirror = self._mirror(path[:-1])
        key = path[-1]
        if key in mirror and not isinstance(mirror[key], dict):
            raise ContainerdConfigError(
                "cannot set keys under %s: it is a %s, not a table" % (dotted(path), type(mirror[key]).__name__))
        if key not in mirror:
            self.touched.add(path[:-1])
        if self.doc is None:
            table = None
        elif self.partial:
            # walk inside the one section document this table is edited in; tables defined in
            # sections not loaded appear there as implicit (header-less) super tables
            table = self.route(path)
            for part in path:
                if part not in table:
                    table[part] = tomlkit.table(is_super_table=True)
                table = table[part]
        else:
            parent = self.table_root if len(path) == 1 else self.table(path[:-1])
            if key in mirror:
                table = parent[key]
            else:
                table = tomlkit.table(is_super_table=True)
                parent[key] = table
        mirror.setdefault(key, {})
        self.tables[path] = table
        return table

    def set(self, path, value):
        """Set ``path`` to ``value`` when the data differs (formatting of untouched keys is kept)."""
        path = tuple(path)
        if isinstance(value, dict):
            self.merge(path, value)
            return
        mirror = self._mirror_parent(path)
        key = path[-1]
        if key in mirror and mirror[key] == value and type(mirror[key]) is type(value):
            return
        if key in mirror and isinstance(mirror[key], dict):
            raise ContainerdConfigError("cannot set %s: it is a table in the file" % dotted(path))
        parent = self.scalar_root if len(path) == 1 else self.table(path[:-1])
        self.touched.add(path[:-1])
        if self.doc is None:
            pass
        elif key in mirror:
            parent[key] = _toml_value(parent[key], value)
        else:
            parent[key] = value
        mirror[key] = copy.deepcopy(value)
        self.changes.append(dotted(path))

    def _mirror_parent(self, path):
        cur = self.data
        for i, part in enumerate(path[:-1]):
            if part not in cur:
                self.table(path[:i + 1])
            elif not isinstance(cur[part], dict):
                raise ContainerdConfigError("cannot set %s: %s is a %s, not a table" % (dotted(path), dotted(path[:i + 1]), type(cur[part]).__name__))
            cur = cur[part]
        return cur

    def merge(self, path, mapping):
        """Merge a nested dict at ``path``: dicts become tables, everything else replaces the value."""
        path = tuple(path)
        for key, value in mapping.items():
            key = str(key)
            sub = path + (key,)
            if isinstance(value, dict):
                existing = self.get(sub)
                if existing is not None and not isinstance(existing, dict):
                    raise ContainerdConfigError(
                        "merge: %s is a %s in the file, cannot merge a table into it" % (dotted(sub), type(existing).__name__))
                if existing is None and value:
                    self.changes.append(dotted(sub))
                self.merge(sub, value)
            else:
                self.set(sub, value)

    def delete_list_items(self, key, drop):
        """Remove the items in ``drop`` from the top-level array ``key``, keeping its formatting."""
        current = self.data.get(key)
        if not isinstance(current, list):
            raise ContainerdConfigError("%s must be a list, found %r" % (key, current))
        if not any(p in drop for p in current):
            return False
        self.touched.add(())
        if self.doc is not None:
            array = self.scalar_root[key]
            for index in reversed(range(len(current))):
                if current[index] in drop:
                    del array[index]
        self.data[key] = [p for p in current if p not in drop]
        self.changes.append(key)
        return True


# --------------------------------------------------------------------------- options


def validate_params(params):
    """Type checks the argument spec cannot express (runtimes is a dict of dicts)."""
    runtimes = params.get("runtimes") or {}
    for name, spec in runtimes.items():
        if not isinstance(spec, dict):
            raise ContainerdConfigError("runtimes.%s must be a dictionary (runtime_type, options, ...), got %r" % (name, spec))
        for key, value in spec.items():
            if key not in RUNTIME_KEYS:
                raise ContainerdConfigError(
                    "runtimes.%s.%s is not a known runtime key (known: %s); set other keys with the merge option"
                    % (name, key, ", ".join(sorted(RUNTIME_KEYS))))
            want = RUNTIME_KEYS[key]
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            if not ok:
                raise ContainerdConfigError("runtimes.%s.%s must be a %s, got %r" % (name, key, want.__name__, value))
            if key in ("pod_annotations", "container_annotations") and not all(isinstance(v, str) for v in value):
                raise ContainerdConfigError("runtimes.%s.%s must be a list of strings" % (name, key))
    merge = params.get("merge")
    if merge is not None and not isinstance(merge, dict):
        raise ContainerdConfigError("merge must be a dictionary of tables and keys")


def apply_options(doc, params, version, data=None):
    """Apply the logical options to ``doc`` (a tomlkit document of config ``version``).

    With ``doc`` None only ``data`` (plain, modified in place) is edited: a cheap dry run.
    Returns (changed key paths, warnings, plain data of the result).
    """
    ed = Editor(doc, data)
    warnings = _apply(ed, params, version)
    return ed.changes, warnings, ed.data


def _apply(ed, params, version):
    schema = schema_for(version)
    warnings = []
    if params.get("merge"):
        ed.merge((), params["merge"])
    if params.get("disable_cri"):
        # a containerd that only serves Docker: no second CRI endpoint next to cri-dockerd. Version 2+ files need the
        # full plugin id (containerd refuses the short "cri" there: "invalid disabled plugin URI")
        if version >= 2 and CRI_V1_NAME in (ed.data.get("disabled_plugins") or []):
            ed.delete_list_items("disabled_plugins", (CRI_V1_NAME,))
        wanted = CRI_V1_NAME if version == 1 else CRI_GRPC_ID
        current = ed.data.get("disabled_plugins") or []
        if not isinstance(current, list):
            raise ContainerdConfigError("disabled_plugins must be a list, found %r" % (current,))
        if wanted not in current:
            ed.set(("disabled_plugins",), current + [wanted])
    elif params.get("enable_cri", True) and "disabled_plugins" in ed.data:
        # the Docker package ships disabled_plugins = ["cri"]
        ed.delete_list_items("disabled_plugins", CRI_PLUGIN_IDS)
    if params.get("sandbox_image") is not None:
        ed.set(schema.sandbox, params["sandbox_image"])
    if params.get("registry_config_path") is not None:
        ed.set(schema.config_path, params["registry_config_path"])
    for name, spec in (params.get("runtimes") or {}).items():
        path = schema.runtimes + (name,)
        if ed.get(path) is None and not spec.get("runtime_type"):
            raise ContainerdConfigError(
                "runtimes.%s does not exist in %s yet: give its runtime_type (e.g. io.containerd.kata.v2)" % (name, dotted(schema.runtimes)))
        for key, value in spec.items():
            if key == "options":
                ed.merge(path + ("options",), value)
            else:
                ed.set(path + (key,), value)
    if params.get("default_runtime") is not None:
        name = params["default_runtime"]
        if ed.get(schema.runtimes + (name,)) is None and name != "runc":
            raise ContainerdConfigError(
                "default_runtime %r is not a runtime in %s; define it under runtimes" % (name, dotted(schema.runtimes)))
        ed.set(schema.default_runtime, name)
    if params.get("systemd_cgroup") is not None:
        value = bool(params["systemd_cgroup"])
        default_name = ed.get(schema.default_runtime) or "runc"
        runtimes = ed.get(schema.runtimes) or {}
        targets = [n for n, rt in runtimes.items() if isinstance(rt, dict) and rt.get("runtime_type") in RUNC_TYPES]
        if default_name not in runtimes:
            ed.set(schema.runtimes + (default_name, "runtime_type"), RUNC_TYPES[0])
            targets.append(default_name)
        for name in targets:
            ed.set(schema.runtimes + (name, "options", "SystemdCgroup"), value)
        if version <= 2 and ed.get(schema.runtime + ("systemd_cgroup",)) is True and not value:
            warnings.append(
                "%s = true is the legacy switch of the io.containerd.runtime.v1.linux shim and was left alone; "
                "runc runtimes use options.SystemdCgroup, which is now false" % dotted(schema.runtime + ("systemd_cgroup",)))
    if version <= 2:
        legacy_default = ed.get(schema.containerd + ("default_runtime", "runtime_type"))
        if legacy_default:
            warnings.append(
                "%s sets the deprecated default_runtime (runtime_type %s): containerd 1.x uses it instead of "
                "default_runtime_name, and containerd 2.x drops it. Remove that table to make the runtimes take effect"
                % (dotted(schema.containerd + ("default_runtime",)), legacy_default))
    return warnings


_TABLE_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*')"""
_SIMPLE_HEADER = re.compile(r"^[ \t]*(\[\[?)[ \t]*(%s(?:[ \t]*\.[ \t]*%s)*)[ \t]*\]\]?[ \t]*(?:#.*)?$" % (_KEY_PART, _KEY_PART))
_KEY_PARTS = re.compile(_KEY_PART)


def _header_path(line):
    """(path, is array of tables) of a table header line; tomllib for anything unusual."""
    match = _SIMPLE_HEADER.match(line)
    if match:
        parts = tuple(p[1:-1] if p[0] in "\"'" else p for p in _KEY_PARTS.findall(match.group(2)))
        return parts, match.group(1) == "[["
    header = _tomllib.loads(line)
    path = []
    while isinstance(header, dict) and len(header) == 1:
        key = next(iter(header))
        path.append(key)
        header = header[key]
    return tuple(path), isinstance(header, list)


def _split_sections(text):
    """Split TOML text at its table headers: (head text, [(header path, text), ...]).

    The path is None for an [[array of tables]] element (kept as text, never edited). None when
    the text has no table header or a header-like line does not read as one (for example inside
    a multi-line value); the caller's read-back check catches anything subtler.
    """
    if _tomllib is None:
        return None
    starts = [m.start() for m in _TABLE_HEADER.finditer(text)]
    if not starts:
        return None
    sections = []
    bounds = starts + [len(text)]
    try:
        for begin, end in zip(bounds[:-1], bounds[1:]):
            chunk = text[begin:end]
            path, aot = _header_path(chunk.split("\n", 1)[0])
            sections.append((None if aot else path, chunk))
    except (_tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return text[:starts[0]], sections


def partial_apply(original, params, version, data, touched):
    """Apply the options parsing only the sections of the file that change.

    tomlkit's parser is the slow part of a merge (tens of ms for a 300-line file, far more when a
    table is split over several places). Only the head of the file (top-level keys) and the
    sections whose tables are written are parsed, each on its own; everything else stays text.
    New tables go into the loaded section sharing the longest key prefix with them. The result is
    accepted only if it reads back as exactly the data of the edit; otherwise None (the caller
    then parses the whole file).
    """
    split = _split_sections(original)
    if split is None:
        return None
    head_text, sections = split
    wanted = [i for i, (path, _text) in enumerate(sections) if path is not None and path in touched]
    try:
        head_doc = tomlkit.parse(head_text)
        docs = {i: tomlkit.parse(sections[i][1]) for i in wanted}
        extra = tomlkit.document()

        def route(path):
            best, best_len = None, 0
            for i in wanted:
                section_path = sections[i][0]
                common = 0
                for a, b in zip(section_path, path):
                    if a != b:
                        break
                    common += 1
                if common > best_len:
                    best, best_len = i, common
            return docs[best] if best is not None else extra

        ed = Editor(head_doc, copy.deepcopy(data), route=route)
        warnings = _apply(ed, params, version)
        out = [tomlkit.dumps(head_doc)]
        for i, (_path, text) in enumerate(sections):
            if i in docs:
                rendered = tomlkit.dumps(docs[i])
                if text.endswith("\n\n") and not rendered.endswith("\n\n"):
                    rendered += "\n"  # keep the blank line before the next section
                out.append(rendered)
            else:
                out.append(text)
        tail = tomlkit.dumps(extra)
        if tail:
            if not out[-1].endswith("\n"):
                out.append("\n")
            out.append("\n" + tail.lstrip("\n"))
        new_text = "".join(out)
        if loads(new_text, "the merged result") != ed.data:
            return None
    except Exception:  # noqa: BLE001 - any surprise here only means: take the full-parse path
        return None
    return ed.changes, warnings, ed.data, new_text


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


def _subset_problems(want, have, where):
    problems = []
    for key, value in want.items():
        if isinstance(value, dict):
            sub = have.get(key) if isinstance(have, dict) else None
            if not isinstance(sub, dict):
                problems.append("%s.%s is missing" % (where, key))
            else:
                problems.extend(_subset_problems(value, sub, "%s.%s" % (where, key)))
        else:
            actual = have.get(key) if isinstance(have, dict) else None
            if actual != value:
                problems.append("%s.%s is %r, expected %r" % (where, key, actual, value))
    return problems


def verify_dump(dump_text, params, file_version):
    """Compare ``containerd config dump`` with the request; return (problems, effective values)."""
    data = loads(dump_text, "the output of 'containerd config dump'")
    version = data.get("version") or 1
    schema = schema_for(version)
    problems = []
    disabled = cri_disabled(data)
    if params.get("disable_cri"):
        if CRI_GRPC_ID not in disabled and CRI_V1_NAME not in disabled:
            problems.append("the CRI plugin is still enabled (disabled_plugins is %s)" % (data.get("disabled_plugins") or []))
    elif disabled:
        problems.append("the CRI plugin is disabled (disabled_plugins contains %s)" % ", ".join(disabled))
    conflict = registry_conflicts(data, version)
    if conflict:
        problems.append(conflict)
    effective = effective_values(data, schema)
    if params.get("sandbox_image") is not None and effective["sandbox_image"] != params["sandbox_image"]:
        problems.append("sandbox image is %r (%s), expected %r" % (effective["sandbox_image"], dotted(schema.sandbox), params["sandbox_image"]))
    if params.get("registry_config_path") is not None and effective["registry_config_path"] != params["registry_config_path"]:
        problems.append("registry config_path is %r (%s), expected %r"
                        % (effective["registry_config_path"], dotted(schema.config_path), params["registry_config_path"]))
    if params.get("default_runtime") is not None and effective["default_runtime"] != params["default_runtime"]:
        problems.append("default runtime is %r, expected %r" % (effective["default_runtime"], params["default_runtime"]))
    runtimes = get_path(data, schema.runtimes, {}) or {}
    for name, spec in (params.get("runtimes") or {}).items():
        if name not in runtimes:
            problems.append("runtime %r is missing from %s" % (name, dotted(schema.runtimes)))
            continue
        problems.extend(_subset_problems(spec, runtimes[name], dotted(schema.runtimes + (name,))))
    if params.get("systemd_cgroup") is not None:
        want = bool(params["systemd_cgroup"])
        default_name = effective["default_runtime"] or "runc"
        checked = [n for n, r in runtimes.items() if isinstance(r, dict) and r.get("runtime_type") in RUNC_TYPES]
        if default_name not in runtimes:
            problems.append("default runtime %r is missing from %s" % (default_name, dotted(schema.runtimes)))
        for name in checked:
            actual = get_path(runtimes[name], ("options", "SystemdCgroup"))
            if actual is not want:
                problems.append("runtime %r has SystemdCgroup = %r, expected %r" % (name, actual, want))
    if params.get("merge") and file_version == version:
        problems.extend(p.replace("merge.", "", 1) for p in _subset_problems(params["merge"], data, "merge"))
    return problems, effective


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


def upgrade_unversioned(doc, target):
    """A file without ``version`` and without plugin tables means the same in every version: add the header."""
    changes = []
    for key in ("disabled_plugins", "required_plugins"):
        if key in doc:
            values = plain(doc[key])
            renamed = [V1_PLUGIN_NAMES.get(p, p) if "." not in p else p for p in values]
            if renamed != values:
                doc[key] = renamed
                changes.append(key)
    _insert_first(doc, "version", target)
    changes.append("version")
    return changes


def _insert_first(doc, key, value):
    # after a leading comment block (licence headers), before the first key or table
    body = doc.body
    index = 0
    for i, (k, _item) in enumerate(body):
        if k is not None:
            index = i
            break
    else:
        index = len(body)
    if index < len(body):
        doc._insert_at(index, key, value)
    else:
        doc.add(key, value)


def has_plugin_tables(data):
    plugins = data.get("plugins")
    return isinstance(plugins, dict) and len(plugins) > 0


def migrate_v1_to_v2(doc):
    """Rename short plugin names to their full ids (as containerd's v1 migration does), keeping comments."""
    if "plugins" in doc and isinstance(doc["plugins"], dict):
        body = doc["plugins"].value if hasattr(doc["plugins"], "value") else doc["plugins"]
        for name in list(doc["plugins"].keys()):
            if "." in name:
                continue
            if name in V1_PLUGIN_NAMES:
                full = V1_PLUGIN_NAMES[name]
            elif name.endswith("-service"):
                full = "io.containerd.service.v1." + name
            else:
                full = "io.containerd.grpc.v1." + name
            if full in doc["plugins"]:
                raise ContainerdConfigError(
                    "cannot migrate the version 1 file: it has both plugins.%s and plugins.\"%s\"; merge them by hand" % (name, full))
            try:
                body._replace(name, full, body[name])
            except Exception as exc:  # noqa: BLE001 - tomlkit layouts it cannot rename in place
                raise ContainerdConfigError(
                    "cannot rename plugins.%s to plugins.\"%s\" in place (%s); migrate the file by hand" % (name, full, exc)) from None
    for key in ("disabled_plugins", "required_plugins"):
        if key in doc:
            values = plain(doc[key])
            doc[key] = [V1_PLUGIN_NAMES.get(p, p) if "." not in p else p for p in values]
    if "version" in doc:
        doc["version"] = 2
    else:
        _insert_first(doc, "version", 2)


# --------------------------------------------------------------------------- orchestration


class NodeOps:
    """What ``run`` needs from the node. Implemented by the action plugin and by the module."""

    def read(self, path):  # -> (exists, text)
        raise NotImplementedError

    def run(self, argv):  # -> (rc, stdout, stderr)
        raise NotImplementedError

    def write_temp(self, text):  # -> path of a temporary file on the node
        raise NotImplementedError

    def install(self, temp_path, text, path, existed, backup):  # -> backup file or None
        raise NotImplementedError

    def cleanup(self):
        pass


def _warnings_of(stderr, limit=None):
    lines = []
    for line in (stderr or "").splitlines():
        if "level=warning" in line or "level=error" in line or "level=fatal" in line:
            lines.append(line.strip())
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + ["(%d more lines)" % (len(lines) - limit)]
    return lines


def _probe_binary(ops, binary):
    rc, out, err = ops.run([binary, "--version"])
    if rc != 0:
        return None, (err or out).strip()
    return out.strip(), None


def run(params, ops, check_mode=False):
    """Do one task: returns the result dict, raises ContainerdConfigError (the file is then untouched)."""
    require_tomlkit()
    params = dict(params)
    validate_params(params)
    path = params.get("path") or DEFAULT_PATH
    binary = params.get("containerd_path") or "containerd"
    warnings = []

    exists, original = ops.read(path)
    original = original if exists else ""
    original_data = loads(original, path)
    doc = None  # the tomlkit document: parsed only when something has to change (it is the slow part)

    version_output, probe_error = _probe_binary(ops, binary)
    validate = params.get("validate")
    if version_output is None and validate:
        raise ContainerdConfigError(
            "validate is true but the containerd binary %r cannot run on the node (%s); set containerd_path to "
            "the binary, install containerd first, or set validate: false" % (binary, probe_error), containerd_path=binary)
    if validate is None:
        validate = version_output is not None
        if not validate:
            warnings.append("containerd (%s) not found on the node: the result was not validated with 'containerd config dump'" % binary)
    binary_version, binary_release = binary_config_version(version_output) if version_output else (None, None)

    migrated_from = None
    data = original_data
    if not original.strip() or not original_data:
        if version_output is not None:
            rc, out, err = ops.run([binary, "config", "default"])
            if rc != 0:
                raise ContainerdConfigError("'%s config default' failed (rc=%d): %s" % (binary, rc, err.strip()), rc=rc, stderr=err)
            base = loads(out, "the output of 'containerd config default'")
            # keep the comments of an all-comment file at the top
            doc = parse((original.rstrip("\n") + "\n\n" if original.strip() else "") + out, path)
            binary_version = detect_version(base) or binary_version
        else:
            doc = parse((original.rstrip("\n") + "\n\n" if original.strip() else "") + "version = 2\n", path)
            warnings.append("%s is missing or empty and containerd is not available: started from a minimal version 2 file" % path)
        data = loads(doc.as_string(), path)
    version = detect_version(data)
    if version is None and not has_plugin_tables(data):
        target = binary_version or 2
        doc = doc if doc is not None else parse(original, path)
        upgrade_unversioned(doc, target)
        data = loads(doc.as_string(), path)
        warnings.append("%s had no version key and no plugin tables: added version = %d (nothing else changes meaning)" % (path, target))
        version = target
    if version is None:
        version = 1
    if version > MAX_KNOWN_VERSION:
        schema_for(version)  # raises with the explanation
    if binary_version and version > binary_version:
        raise ContainerdConfigError(
            "%s is a version %d config but containerd %s reads versions up to %d; upgrade containerd or rewrite "
            "the file for this containerd (for example remove it so it is created from 'containerd config default')"
            % (path, version, binary_release, binary_version), config_version=version)

    if params.get("migrate") and binary_version and version < binary_version:
        migrated_from = version
        doc = doc if doc is not None else parse(original, path)
        if version == 1:
            migrate_v1_to_v2(doc)
            version = 2
        if version < binary_version and binary_version >= 3:
            temp = ops.write_temp(tomlkit.dumps(doc))
            rc, out, err = ops.run([binary, "--config", temp, "config", "migrate"])
            if rc != 0:
                raise ContainerdConfigError("'%s config migrate' failed (rc=%d): %s" % (binary, rc, err.strip()), rc=rc, stderr=err)
            doc = parse(out, "the output of 'containerd config migrate'")
            version = detect_version(doc) or binary_version
        data = loads(doc.as_string(), path)
    elif version == 1 and binary_version and binary_version >= 3:
        warnings.append("%s is a version 1 file (no version key) and containerd %s no longer reads version 1 CRI settings; "
                        "set migrate: true to convert it" % (path, binary_release))

    schema = schema_for(version)
    new_text = None
    if doc is None:
        # dry run on plain data first: an unchanged file never needs the (slow) comment-preserving parser
        dry = Editor(None, copy.deepcopy(data))
        apply_warnings = _apply(dry, params, version)
        changes, new_data = dry.changes, dry.data
        if not changes:
            new_text = original
        else:
            partial = partial_apply(original, params, version, data, dry.touched)
            if partial is not None:
                changes, apply_warnings, new_data, new_text = partial
            else:
                doc = parse(original, path)
    if doc is not None:
        changes, apply_warnings, new_data = apply_options(doc, params, version, copy.deepcopy(data))
        new_text = tomlkit.dumps(doc)
        if loads(new_text, "the merged result") != new_data:  # pragma: no cover - guards against a tomlkit rendering bug
            raise ContainerdConfigError("internal error: the merged TOML does not read back as written; nothing was changed")
    warnings.extend(apply_warnings)
    conflict = registry_conflicts(new_data, version)
    if conflict:
        raise ContainerdConfigError("%s: %s" % (path, conflict))

    changed = (not exists) or new_data != original_data
    if not changed:
        new_text = original
    result = {
        "changed": changed,
        "path": path,
        "config_version": version,
        "migrated_from": migrated_from,
        "changed_keys": changes if changed else [],
        "key_paths": schema.describe(),
        "restart_required": changed,
        "backup_file": None,
        "validated": False,
        "containerd_version": version_output,
        "diff": {"before": original, "after": new_text, "before_header": path, "after_header": path},
    }

    if validate:
        temp = ops.write_temp(new_text)
        rc, out, err = ops.run([binary, "--config", temp, "config", "dump"])
        if rc != 0:
            raise ContainerdConfigError(
                "containerd rejected the merged %s (%s --config <candidate> config dump, rc=%d): %s; the file was not changed"
                % (path, binary, rc, (err or out).strip()), rc=rc, stderr=err, candidate=new_text)
        problems, effective = verify_dump(out, params, version)
        if problems:
            hint = ""
            if version == 1 and (binary_version or 0) >= 3:
                hint = (" %s is a version 1 file and containerd %s ignores its CRI settings; set migrate: true "
                        "(or write the file as version %d)" % (path, binary_release, binary_version))
            quoted = _warnings_of(err, limit=6)
            raise ContainerdConfigError(
                "containerd %s would not use the requested settings from %s: %s.%s%s The file was not changed."
                % (binary_release or binary, path, "; ".join(problems), hint,
                   (" containerd said: " + " | ".join(quoted)) if quoted else ""),
                problems=problems, stderr=err, candidate=new_text)
        result["validated"] = True
        result["values"] = effective
        for line in _warnings_of(err):
            if "Configuration migrated from version" not in line:
                warnings.append("containerd: " + line)
    else:
        data_schema = schema_for(version)
        result["values"] = effective_values(new_data, data_schema)

    if changed and not check_mode:
        temp = ops.write_temp(new_text)
        result["backup_file"] = ops.install(temp, new_text, path, exists, bool(params.get("backup")))
    result["warnings"] = warnings
    return result
