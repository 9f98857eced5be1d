# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeforge.cluster.release_artifact: a local artifact is verified and read on the controller.

For ``src`` (the artifacts directory on the controller): the file and its checksum are checked here, before the
node is contacted; the members of an archive are hashed here, and the node module first only compares its files
with those hashes (``compare_only``). Only when something differs is the artifact transferred into Ansible's remote
temporary directory and the module run again to install it. ``url`` and ``remote_src`` go to the module unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.kubeforge.cluster.plugins.module_utils._artifacts import (
    BINARY,
    PACKAGE,
    TAR,
    ArtifactError,
    argument_spec,
    detect_format,
    lookup_checksum,
    member_hashes,
    mismatch_message,
    parse_source,
    parse_targets,
    sha256_file,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, untagged

MODULE = "kubeforge.cluster.release_artifact"


class HashCache:
    """What the controller computed from an artifact file, kept across hosts and runs.

    Hashing the members of a 30 MB tarball costs about half a second of CPU, paid per host and run otherwise. An entry
    is keyed by the file's device, inode, size, mtime and ctime (ctime cannot be set back by hand), so a replaced or
    edited artifact is hashed again. When an artifact is transferred, the node verifies its sha256 itself, so the
    cache never lets unverified content through. ``$XDG_CACHE_HOME/kubeforge/artifacts`` (``~/.cache/...``); no cache
    when it cannot be written.
    """

    def __init__(self, directory=None):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        self.directory = directory or os.path.join(base, "kubeforge", "artifacts")

    def _entry(self, path):
        info = os.stat(path)
        identity = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        name = hashlib.sha256(os.path.realpath(path).encode("utf-8")).hexdigest()[:32] + ".json"
        return os.path.join(self.directory, name), identity

    def get(self, path, key, compute):
        """The cached value of ``key`` for the file at ``path``, computed and stored when missing."""
        cache_file, identity = self._entry(path)
        data = {}
        try:
            with open(cache_file) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            pass
        if not isinstance(data, dict) or data.get("identity") != identity:
            data = {"identity": identity, "values": {}}
        if key in data["values"]:
            return data["values"][key]
        value = compute()
        data["values"][key] = value
        try:
            os.makedirs(self.directory, 0o700, exist_ok=True)
            fd, staged = tempfile.mkstemp(dir=self.directory, prefix=".cache-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.rename(staged, cache_file)
        except OSError:
            pass  # a read-only home: no cache, same results
        return value


class ActionModule(ActionBase):

    TRANSFERS_FILES = False  # a remote tmp dir is made only when the artifact must be transferred
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        for internal in ("expected_files", "compare_only"):
            if self._task.args.get(internal) is not None:
                result.update(failed=True, msg="%s is set by the action plugin, not by a task" % internal)
                return result
        _validation, params = self.validate_argument_spec(argument_spec=argument_spec())
        params = untagged(params)
        if params.get("url") is not None or params["remote_src"]:
            result.update(self._module(params, task_vars))
            return result
        try:
            args = self._prepare_local(params)
        except (ArtifactError, InputError) as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        local = args.pop("_local")
        inspected = self._module(dict(args, compare_only=True), task_vars)
        if inspected.get("failed") or not inspected.pop("transfer_needed", False):
            result.update(inspected)
            return result
        if self._task.check_mode and detect_format(os.path.basename(local), params["format"]) != PACKAGE:
            result.update(inspected)  # the comparison is exact: no transfer needed to predict
            return result
        if not self._connection._shell.tmpdir:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, os.path.basename(local))
        self._transfer_file(local, remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote))
        installed = self._module(dict(args, src=remote, remote_src=True, checksum_file=None), task_vars)
        installed["transferred"] = True
        result.update(installed)
        return result

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars, wrap_async=False)

    def _local_file(self, path, variable, option):
        """The controller path of ``path`` (absolute, or searched like copy's src); missing -> an error naming it."""
        if os.path.isabs(path):
            if os.path.isfile(path):
                return path
            if os.path.isdir(path):
                raise ArtifactError("%s: %s is a directory; %s must name the artifact file in it" % (variable, path, option))
        else:
            try:
                return self._find_needle("files", path)
            except AnsibleError:
                pass
        directory, name = os.path.split(path)
        raise ArtifactError("%s: %s not found in %s" % (variable, name, directory or "the role's files/ or the playbook directory"))

    def _prepare_local(self, params):
        """Verify the local artifact and compute what the node should have; returns the module's arguments."""
        variable, checksum = parse_source(params)
        local = self._local_file(params["src"], variable, "src")
        name = os.path.basename(local)
        fmt = detect_format(name, params["format"])
        targets = parse_targets(params, fmt)
        where = "checksum"
        if checksum is None:
            where = self._local_file(params["checksum_file"], variable, "checksum_file")
            with open(where, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
            checksum = lookup_checksum(text, name, where, variable)
        cache = HashCache()
        actual = cache.get(local, "sha256", lambda: sha256_file(local))
        if actual != checksum:
            raise ArtifactError(mismatch_message(variable, local, actual, checksum, where))
        expected = None
        if fmt == TAR:
            key = json.dumps(["members", params["strip_components"], params.get("dest"),
                              None if targets is None else [[t.member, t.dest, t.mode] for t in targets]])
            expected = cache.get(local, key, lambda: member_hashes(local, params["strip_components"], targets, params.get("dest"), variable, name))
        elif fmt == BINARY:
            target = targets[0]
            expected = {target.dest: {"sha256": checksum, "mode": "%04o" % target.mode}}
        args = dict(params, src=local, checksum=checksum, checksum_file=None, variable=variable, expected_files=expected, _local=local)
        return args
