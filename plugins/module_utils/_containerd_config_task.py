# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One containerd_config task on the controller: ``run()`` and the steps it is made of.

The node is reached through a ``node`` object with the operations of the node-side helper module
(``_containerd_config_node``): ``inspect``, ``dump``, ``install`` and ``discard``, each one module run. A
converged file costs one call (inspect, which also dumps the file as it is), a change three (inspect,
dump of the candidate, install of that same candidate), check mode two. ``node.install`` raises
``Conflict`` when the file changed since it was read; the task then starts again from a fresh read.

Every string that leaves ``run()`` (result, warnings, errors, diff) has the secrets masked: values under
credential keys in the request and in the file (before and after), see ``Secrets``.
"""

from __future__ import annotations

import collections
import random
import time

from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config import (
    Request,
    detect_version,
    effective_values,
    has_plugin_tables,
    migrate_v1_to_v2,
    plan_options,
    registry_conflicts,
    upgrade_unversioned,
    verify_dump,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import (
    MAX_KNOWN_VERSION,
    ContainerdConfigError,
    binary_config_version,
    schema_for,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_toml import (
    apply_edits,
    loads,
    mask_values,
    require_tomlkit,
    same,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, collect_secrets, mask_text

HELPER = "kubeforge.cluster.containerd_config_node"
MAX_ATTEMPTS = 5
SECRET_FILE_MODE = 0o600


class Conflict(Exception):
    """``node.install`` found the file changed since ``node.inspect`` read it; nothing was written."""


class ModuleNode:
    """The node operations ``run`` uses, each one run of the helper module through ``execute(module_args)``
    (the action plugin passes ``_execute_module``; tests run the same module in-process)."""

    def __init__(self, execute):
        self.execute = execute
        self.calls = []

    def _call(self, op, **args):
        self.calls.append(op)
        result = self.execute(dict(args, op=op))
        if result.get("failed"):
            if result.get("conflict"):
                raise Conflict(result.get("msg"))
            extra = {k: result[k] for k in ("rc", "stdout", "stderr") if k in result}
            raise ContainerdConfigError(result.get("msg") or "%s failed on the node" % HELPER, **extra)
        return result

    def inspect(self, path, containerd_path, dump_current):
        return self._call("inspect", path=path, containerd_path=containerd_path, dump_current=dump_current)

    def dump(self, path, containerd_path, candidate, command, stage):
        return self._call("dump", path=path, containerd_path=containerd_path, candidate=candidate, command=command, stage=stage)

    def install(self, path, **args):
        return self._call("install", path=path, **args)

    def discard(self, path, staged):
        return self._call("discard", path=path, staged=staged)


Base = collections.namedtuple("Base", "text data version migrated_from")


class Secrets:
    """The secret strings known so far; masks any string or nested result."""

    def __init__(self, request_secrets, is_secret):
        self.values = {s for s in request_secrets if s}
        self.is_secret = is_secret

    def add_data(self, data, extra=()):
        self.values.update(s for s in collect_secrets(data, extra) if s)

    def mask(self, value):
        if isinstance(value, str):
            return mask_text(value, self.values)
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask(v) for v in value]
        return value


def run(params, node, check_mode=False, diff=False):
    """Do one task: the result dict, or ContainerdConfigError (the file is then untouched)."""
    require_tomlkit()
    try:
        request = Request(params)
    except InputError as exc:
        raise ContainerdConfigError(str(exc), option=exc.option) from None
    secrets = Secrets(request.secrets, request.is_secret)
    notes = []
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                result = _attempt(request, node, check_mode, diff, secrets, notes)
                break
            except Conflict as exc:
                if attempt == MAX_ATTEMPTS:
                    raise ContainerdConfigError("%s; gave up after %d attempts" % (exc, attempt), conflict=True) from None
                notes.append("%s changed while this task worked on it (another writer); read it again and merged into the new content"
                             % request.path)
                time.sleep(random.uniform(0.05, 0.3) * attempt)  # out of step with the other writer
    except ContainerdConfigError as exc:
        raise ContainerdConfigError(secrets.mask(exc.msg), **secrets.mask(exc.extra)) from None
    result["warnings"] = notes + result["warnings"]
    return secrets.mask(result)


def _attempt(request, node, check_mode, diff, secrets, notes):
    state = node.inspect(request.path, request.containerd_path, dump_current=request.validate is not False)
    original = loads(state["content"], request.path) if state["exists"] else {}
    secrets.add_data(original, request.secret_keys)
    warnings = []
    binary = probe_binary(request, state, warnings)
    base = starting_point(request, state, original, binary, warnings)
    base = migrate_if_asked(request, base, binary, node, warnings)
    plan, plan_warnings = plan_options(base.data, request, base.version)
    warnings.extend(plan_warnings)
    candidate = apply_edits(base.text, plan.edits, plan.data)
    secrets.add_data(plan.data, request.secret_keys)
    conflict = registry_conflicts(plan.data, base.version)
    if conflict:
        raise ContainerdConfigError("%s: %s" % (request.path, conflict))
    changed = not state["exists"] or not same(plan.data, original)
    if not changed:
        candidate = state["content"]
    validation = validate(request, state, binary, base, candidate, changed, node, check_mode, warnings)
    result = {
        "changed": changed,
        "path": request.path,
        "config_version": base.version,
        "migrated_from": base.migrated_from,
        "changed_keys": plan.changed_keys if changed else [],
        "key_paths": schema_for(base.version).describe(),
        "restart_required": changed,
        "backup_file": None,
        "validated": validation is not None,
        "containerd_version": binary["version"],
        "values": validation["values"] if validation else effective_values(plan.data, schema_for(base.version)),
        "warnings": warnings,
    }
    if changed and not check_mode:
        result["backup_file"] = install(request, state, candidate, validation, node, secrets)
    if diff:
        result["diff"] = masked_diff(request, state["content"], original, candidate, plan.data, secrets)
    return result


def probe_binary(request, state, warnings):
    """What containerd the node has: {"version": output or None, "config_version": n or None, "release": "2.1"}."""
    probe = {"version": None, "config_version": None, "release": None}
    if state["binary"] is None:
        if request.validate:
            raise ContainerdConfigError(
                "validate is true but the containerd binary %r is not on the node; set containerd_path to the binary, "
                "install containerd first, or set validate: false" % request.containerd_path, containerd_path=request.containerd_path)
        if request.validate is None:
            warnings.append("containerd (%s) not found on the node: the result was not validated with 'containerd config dump'"
                            % request.containerd_path)
        return probe
    run = state["version"]
    if run["rc"] != 0:
        if request.validate is False:
            warnings.append("'%s --version' exited with %d; containerd was not used (validate: false)" % (state["binary"], run["rc"]))
            return probe
        raise ContainerdConfigError(
            "'%s --version' exited with %d: %s. containerd cannot run on the node, so the file was not changed; fix or "
            "reinstall containerd, point containerd_path at a working binary, or set validate: false"
            % (state["binary"], run["rc"], (run["stderr"] or run["stdout"]).strip()),
            rc=run["rc"], stdout=run["stdout"], stderr=run["stderr"], containerd_path=request.containerd_path)
    probe["version"] = run["stdout"].strip()
    probe["config_version"], probe["release"] = binary_config_version(probe["version"])
    return probe


def starting_point(request, state, original, binary, warnings):
    """The text to merge into: the file, containerd's default for a missing/comment-only file, a version header added."""
    text, data = state["content"], original
    if not data:
        prefix = text.rstrip("\n") + "\n\n" if text.strip() else ""  # keep the comments of an all-comment file on top
        default = state.get("default")
        if default is not None and binary["version"] is not None:
            if default["rc"] != 0:
                raise ContainerdConfigError("'%s config default' failed (rc=%d): %s" % (state["binary"], default["rc"], default["stderr"].strip()),
                                            rc=default["rc"], stdout="", stderr=default["stderr"])
            text = prefix + default["stdout"]
            binary["config_version"] = detect_version(loads(default["stdout"], "the output of 'containerd config default'")) or binary["config_version"]
        else:
            text = prefix + "version = 2\n"
            warnings.append("%s is missing or empty and containerd is not available: started from a minimal version 2 file" % request.path)
        data = loads(text, request.path)
    version = detect_version(data)
    if version is None and not has_plugin_tables(data):
        target = binary["config_version"] or 2
        text, data = upgrade_unversioned(text, data, target)
        warnings.append("%s had no version key and no plugin tables: added version = %d (nothing else changes meaning)" % (request.path, target))
        version = target
    version = version or 1
    if version > MAX_KNOWN_VERSION:
        schema_for(version)  # raises with the explanation
    if binary["config_version"] and version > binary["config_version"]:
        raise ContainerdConfigError(
            "%s is a version %d config but containerd %s reads versions up to %d; upgrade containerd or rewrite "
            "the file for this containerd (for example remove it so it is created from 'containerd config default')"
            % (request.path, version, binary["release"], binary["config_version"]), config_version=version)
    return Base(text, data, version, None)


def migrate_if_asked(request, base, binary, node, warnings):
    target = binary["config_version"]
    if not target or base.version >= target:
        return base
    if not request.migrate:
        if base.version == 1 and target >= 3:
            warnings.append("%s is a version 1 file (no version key) and containerd %s no longer reads version 1 CRI settings; "
                            "set migrate: true to convert it" % (request.path, binary["release"]))
        return base
    text, data, version = base.text, base.data, base.version
    if version == 1:
        text, data = migrate_v1_to_v2(text, data)  # containerd's own migration drops a version 1 file's CRI settings
        version = 2
    if version < target and target >= 3:
        migrated = node.dump(request.path, request.containerd_path, text, command="migrate", stage=False)
        if migrated["rc"] != 0:
            raise ContainerdConfigError("'containerd config migrate' failed (rc=%d): %s" % (migrated["rc"], migrated["stderr"].strip()),
                                        rc=migrated["rc"], stdout="", stderr=migrated["stderr"])
        text = migrated["stdout"]
        data = loads(text, "the output of 'containerd config migrate'")
        version = detect_version(data) or target
    return Base(text, data, version, base.version)


def validate(request, state, binary, base, candidate, changed, node, check_mode, warnings):
    """Judge the candidate with ``containerd config dump``; None when not validated. Keeps a staged candidate."""
    if binary["version"] is None or request.validate is False:
        return None
    if not changed and state.get("current_dump") is not None:
        dump, staged = state["current_dump"], None
    else:
        dump = node.dump(request.path, request.containerd_path, candidate, command="dump", stage=changed and not check_mode)
        staged = dump.get("staged")
    try:
        if dump["rc"] != 0:
            raise ContainerdConfigError(
                "containerd rejected the merged %s (%s --config <candidate> config dump, rc=%d): %s; the file was not changed"
                % (request.path, state["binary"], dump["rc"], (dump["stderr"] or dump["stdout"]).strip()),
                rc=dump["rc"], stdout="", stderr=dump["stderr"])
        problems, effective = verify_dump(dump["stdout"], request, base.version)
        if problems:
            hint = ""
            if base.version == 1 and (binary["config_version"] or 0) >= 3:
                hint = (" %s is a version 1 file and containerd %s ignores its CRI settings; set migrate: true "
                        "(or write the file as version %d)" % (request.path, binary["release"], binary["config_version"]))
            quoted = containerd_warnings(dump["stderr"], limit=6)
            raise ContainerdConfigError(
                "containerd %s would not use the requested settings from %s: %s.%s%s The file was not changed."
                % (binary["release"] or state["binary"], request.path, "; ".join(problems), hint,
                   (" containerd said: " + " | ".join(quoted)) if quoted else ""),
                problems=problems, stderr=dump["stderr"])
    except ContainerdConfigError:
        if staged:
            node.discard(request.path, staged)
        raise
    for line in containerd_warnings(dump["stderr"]):
        if "Configuration migrated from version" not in line:
            warnings.append("containerd: " + line)
    return {"values": effective, "staged": staged, "staged_sha256": dump.get("staged_sha256")}


def install(request, state, candidate, validation, node, secrets):
    """Replace the file with the candidate; Conflict when it changed since inspect."""
    mode = SECRET_FILE_MODE if secrets.values else 0o644  # only for a new file: an existing one keeps its mode
    args = dict(expected_sha256=state["sha256"] or "", backup=request.backup, mode=mode)
    if validation and validation["staged"]:
        args.update(staged=validation["staged"], staged_sha256=validation["staged_sha256"])
    else:
        args.update(content=candidate)
    return node.install(request.path, **args).get("backup_file")


def masked_diff(request, before_text, before_data, after_text, after_data, secrets):
    """Before/after with every credential masked, on both sides; withheld when that cannot be done exactly."""
    sides = []
    for text, data in ((before_text, before_data), (after_text, after_data)):
        masked = mask_values(text, data, secrets.is_secret, secrets.values)
        if masked is None:
            masked = "(not shown: %s holds credentials this module could not mask exactly)\n" % request.path
        sides.append(masked)
    return {"before": sides[0], "after": sides[1], "before_header": request.path, "after_header": request.path}


def containerd_warnings(stderr, limit=None):
    lines = [line.strip() for line in (stderr or "").splitlines()
             if "level=warning" in line or "level=error" in line or "level=fatal" in line]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + ["(%d more lines)" % (len(lines) - limit)]
    return lines
