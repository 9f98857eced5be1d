# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's half of ``kubeforge.cluster.release_artifact``: compare, fetch, verify, install all-or-nothing.

Order of work, so that a bad artifact never changes the node:

1. What should be installed is known without the artifact when possible: a binary's content is its checksum; the
   controller sends the member hashes of a local tarball (``expected_files``); for a download, the state file written by
   the last install records the artifact checksum and the hashes it installed. When every installed file has that
   content, nothing is transferred or downloaded (only a mode or owner may be fixed).
2. Otherwise the artifact is downloaded into a private temporary directory (or was transferred by the action plugin)
   and its sha256 is verified before anything else happens.
3. Each file that differs is staged next to its destination, then all are renamed together
   (``_files.StagedFiles``); the state file is written last.

Package artifacts (.deb/.rpm) go to ``_packages.ensure``; their state file records which package version an
artifact checksum installed, so a converged node needs no transfer either.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import stat
import tempfile

from ansible_collections.kubeforge.cluster.plugins.module_utils._artifacts import (
    BINARY,
    CHUNK,
    PACKAGE,
    ArtifactError,
    lookup_checksum,
    mismatch_message,
    path_under,
    read_members,
    sha256_file,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import (
    ManagedFileError,
    StagedFiles,
    read_text,
    replace_file,
    resolve_managed,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

STATE_VERSION = 1


def resolve_ids(owner, group):
    def lookup(option, value, by_name, by_id):
        if value is None:
            return 0
        if str(value).isdigit():
            return int(value)
        try:
            return by_name(value)
        except KeyError:
            raise InputError(option, "there is no %s %r on the node" % (option == "owner" and "user" or "group", value)) from None

    return (lookup("owner", owner, lambda n: pwd.getpwnam(n).pw_uid, pwd.getpwuid),
            lookup("group", group, lambda n: grp.getgrnam(n).gr_gid, grp.getgrgid))


def installed_file(dest):
    """(real path, {"sha256", "mode", "uid", "gid"} or None when missing) of the file at ``dest``."""
    try:
        real = resolve_managed(dest)
    except ManagedFileError as exc:
        raise ArtifactError(str(exc)) from None
    try:
        info = os.stat(real)
    except FileNotFoundError:
        return real, None
    return real, {"sha256": sha256_file(real), "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid}


def installed_link(dest):
    """{"link": target} for a symbolic link at ``dest``, {"not_link": True} for anything else, None when missing."""
    try:
        return {"link": os.readlink(dest)}
    except FileNotFoundError:
        return None
    except OSError:
        return {"not_link": True}


def describe(dest, current):
    if current is None:
        return "%s (not installed)\n" % dest
    if "link" in current:
        return "%s -> %s\n" % (dest, current["link"])
    if "not_link" in current:
        return "%s (not a symbolic link)\n" % dest
    return "%s sha256:%s mode %04o owner %d:%d\n" % (dest, current["sha256"], current["mode"], current["uid"], current["gid"])


def file_digest(want):
    """How ``files`` of the result shows an installed entry: its sha256, or ``link:<target>`` for a symbolic link."""
    return want["sha256"] if "sha256" in want else "link:" + want["link"]


class Comparison:
    """Installed files against ``expected`` (``{dest: {"sha256", "mode"}}``)."""

    def __init__(self, expected, uid, gid, artifact_name):
        self.expected = expected
        self.real = {}
        self.current = {}
        self.content = []  # dests whose content must be replaced
        self.metadata = []  # dests whose mode or owner must be fixed
        self.reasons = []
        for dest in sorted(expected):
            want = expected[dest]
            if "link" in want:  # a symbolic link of the archive: compared as a link, never followed
                current = installed_link(dest)
                self.real[dest], self.current[dest] = dest, current
                if current is None or current.get("link") != want["link"]:
                    self.content.append(dest)
                    self.reasons.append("%s: %s" % (dest, "not installed" if current is None else
                                                    "not a link to %s" % want["link"]))
                continue
            real, current = installed_file(dest)
            self.real[dest] = real
            self.current[dest] = current
            mode = int(want["mode"], 8)
            if current is None:
                self.content.append(dest)
                self.reasons.append("%s: not installed" % dest)
            elif current["sha256"] != want["sha256"]:
                self.content.append(dest)
                self.reasons.append("%s: content differs from %s" % (dest, artifact_name))
            elif (current["mode"], current["uid"], current["gid"]) != (mode, uid, gid):
                self.metadata.append(dest)
                if current["mode"] != mode:
                    self.reasons.append("%s: mode %04o, wanted %04o" % (dest, current["mode"], mode))
                if (current["uid"], current["gid"]) != (uid, gid):
                    self.reasons.append("%s: owner %d:%d, wanted %d:%d" % (dest, current["uid"], current["gid"], uid, gid))

    def fix_metadata(self, uid, gid, dests=None):
        for dest in self.metadata if dests is None else dests:
            real = self.real[dest]
            os.chown(real, uid, gid)
            os.chmod(real, int(self.expected[dest]["mode"], 8))

    def diff(self, uid, gid, changed):
        before = after = ""
        for dest in sorted(changed):
            want = self.expected[dest]
            before += describe(dest, self.current[dest])
            after += describe(dest, want if "link" in want else {"sha256": want["sha256"], "mode": int(want["mode"], 8), "uid": uid, "gid": gid})
        return {"before_header": "installed files", "after_header": "installed files", "before": before, "after": after}


class StateFile:
    """``<state_dir>/<key>.json``: what the last install of an artifact put on the node."""

    def __init__(self, state_dir, key):
        self.path = os.path.join(state_dir, key + ".json")

    def load(self):
        try:
            text = read_text(self.path)
            data = json.loads(text) if text else None
        except (ManagedFileError, ValueError):
            return None  # unreadable: treated as missing, the next install rewrites it
        return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else None

    def save(self, module, data):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        text = json.dumps(dict(data, version=STATE_VERSION), indent=2, sort_keys=True) + "\n"
        replace_file(module, self.path, text, mode=0o644)


def files_state_key(dest, targets, strip):
    material = json.dumps([dest, sorted(t.dest for t in targets) if targets is not None else None, strip])
    first = os.path.basename(targets[0].dest) if targets else os.path.basename(dest or "files")
    return "files-%s-%s" % (first, hashlib.sha256(material.encode("utf-8")).hexdigest()[:12])


def find_package_state(state_dir, checksum):
    try:
        names = sorted(os.listdir(state_dir))
    except OSError:
        return None
    for name in names:
        if name.startswith("package-") and name.endswith(".json"):
            data = StateFile(state_dir, name[:-5]).load()
            if data and data.get("checksum") == checksum:
                return data
    return None


def download(module, url, directory, checksum, timeout, validate_certs, variable):
    """Fetch ``url`` into ``directory`` (private to this run), hashing as it streams; verify before returning."""
    from ansible.module_utils.urls import open_url  # only the download path needs it

    path = os.path.join(directory, os.path.basename(url.split("?", 1)[0].rstrip("/")) or "artifact")
    digest = hashlib.sha256()
    try:
        response = open_url(url, timeout=timeout, validate_certs=validate_certs, http_agent="kubeforge.cluster.release_artifact")
        with open(path, "wb") as handle:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                digest.update(chunk)
                handle.write(chunk)
    except Exception as exc:  # urllib raises many types (HTTPError, URLError, socket.timeout, ssl errors)
        raise ArtifactError("%s: %s could not be downloaded: %s; nothing was changed" % (variable, url, exc)) from None
    actual = digest.hexdigest()
    if actual != checksum:
        raise ArtifactError(mismatch_message(variable, url, actual, checksum, "checksum"), actual_checksum=actual)
    return path


class Request:
    """The validated parameters the node needs."""

    def __init__(self, params, variable, checksum, fmt, targets, uid, gid):
        self.params = params
        self.variable = variable
        self.checksum = checksum
        self.fmt = fmt
        self.targets = targets
        self.uid = uid
        self.gid = gid
        self.url = params.get("url")
        self.src = params.get("src")
        self.artifact_name = os.path.basename((self.url or self.src).split("?", 1)[0].rstrip("/"))
        self.dest = params.get("dest")
        self.strip = params.get("strip_components") or 0
        self.state_dir = params["state_dir"]


class Installer:
    """One run of the module on the node; ``module`` gives check mode, tmpdir and the file helpers."""

    def __init__(self, module, request, package_manager=None):
        self.module = module
        self.req = request
        self.package_manager = package_manager
        self.check_mode = module.check_mode
        self.result = dict(changed=False, checksum=request.checksum, installed=[], reasons=[], transferred=False, files={})
        self.tmpdir = None

    # ---------------------------------------------------------------- entry point
    def run(self, expected=None, inspect_only=False):
        try:
            if self.req.fmt == PACKAGE:
                return self._package(inspect_only)
            return self._files(expected, inspect_only)
        finally:
            if self.tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ---------------------------------------------------------------- files (binary, tar)
    def _files(self, expected, inspect_only):
        req = self.req
        state = None
        if req.fmt == BINARY and req.checksum:
            target = req.targets[0]
            expected = {target.dest: {"sha256": req.checksum, "mode": "%04o" % target.mode}}
        elif expected is None:
            state = StateFile(req.state_dir, files_state_key(req.dest, req.targets, req.strip))
            recorded = state.load()
            if recorded and recorded.get("checksum") == req.checksum and self._same_dests(recorded.get("files", {})):
                expected = self._with_requested_modes(recorded["files"])
            else:
                self.result["reasons"].append("%s: no record that %s installed these files" % (state.path, req.artifact_name)
                                              if not recorded else "%s: installed from another artifact (sha256 %s)" % (state.path, recorded.get("checksum")))
        if expected is not None:
            comparison = Comparison(expected, req.uid, req.gid, req.artifact_name)
            self.result["files"] = {dest: file_digest(want) for dest, want in expected.items()}
            if not comparison.content:
                return self._finish(comparison, [], comparison.metadata)
            self.result["reasons"] += comparison.reasons
            if inspect_only:
                self.result.update(changed=True, transfer_needed=True, installed=sorted(comparison.content))
                if self.module._diff:
                    self.result["diff"] = comparison.diff(req.uid, req.gid, comparison.content + comparison.metadata)
                return self.result
            if self.check_mode:  # what the artifact holds is known, so is the difference: no download
                return self._finish(comparison, comparison.content, comparison.metadata)
        elif inspect_only:
            self.result.update(changed=True, transfer_needed=True)
            return self.result
        elif self.check_mode and req.targets and any(installed_file(t.dest)[1] is None for t in req.targets):
            # a file is missing, so a real run installs: no need to download in check mode to know that
            self.result["changed"] = True
            self.result["installed"] = sorted(t.dest for t in req.targets)
            self.result["reasons"] += ["%s: not installed" % t.dest for t in req.targets if installed_file(t.dest)[1] is None]
            return self.result

        path = self._artifact_on_node()
        if req.fmt == BINARY:
            return self._install_binary(path)
        return self._install_tar(path, expected, state)

    def _with_requested_modes(self, files):
        """The recorded files with the modes this task asks for (a mode given now wins over the archive's)."""
        modes = {t.dest: t.mode for t in self.req.targets or [] if t.mode is not None}
        default = self.req.params.get("mode")
        result = {}
        for dest, want in files.items():
            if "link" in want:
                result[dest] = dict(want)
                continue
            mode = modes.get(dest)
            if mode is None and default is not None and self.req.targets is None:
                mode = int(default, 8)
            result[dest] = dict(want, mode="%04o" % mode) if mode is not None else dict(want)
        return result

    def _same_dests(self, files):
        if self.req.targets is None:
            return bool(files)
        return sorted(files) == sorted(t.dest for t in self.req.targets)

    def _artifact_on_node(self):
        """The verified artifact file on the node: downloaded now, or transferred by the action plugin."""
        req = self.req
        if req.url:
            self.tmpdir = tempfile.mkdtemp(prefix="kubeforge-artifact-", dir=getattr(self.module, "tmpdir", None))
            os.chmod(self.tmpdir, 0o700)
            path = download(self.module, req.url, self.tmpdir, req.checksum, req.params["timeout"], req.params["validate_certs"], req.variable)
            self.result["transferred"] = True
            return path
        if not os.path.isfile(req.src):
            raise ArtifactError("%s: %s not found on the node" % (req.variable, req.src))
        if req.checksum is None:  # remote_src with a checksum file on the node
            where = req.params["checksum_file"]
            try:
                text = read_text(where)
            except ManagedFileError as exc:
                raise ArtifactError("%s: %s" % (req.variable, exc)) from None
            if text is None:
                raise ArtifactError("%s: %s not found in %s" % (req.variable, os.path.basename(where), os.path.dirname(where)))
            req.checksum = lookup_checksum(text, os.path.basename(req.src), where, req.variable)
            self.result["checksum"] = req.checksum
        actual = sha256_file(req.src)
        if actual != req.checksum:
            raise ArtifactError(mismatch_message(req.variable, req.src, actual, req.checksum, req.params.get("checksum_file") or "checksum"))
        return req.src

    def _install_binary(self, path):
        target = self.req.targets[0]
        expected = {target.dest: {"sha256": self.req.checksum, "mode": "%04o" % target.mode}}
        comparison = Comparison(expected, self.req.uid, self.req.gid, self.req.artifact_name)
        self.result["files"] = {target.dest: self.req.checksum}
        with StagedFiles(self.module) as staged:
            if comparison.content and not self.check_mode:
                with open(path, "rb") as handle:
                    staged.stage(comparison.real[target.dest], handle, target.mode, self.req.uid, self.req.gid)
            return self._finish(comparison, comparison.content, comparison.metadata, staged)

    def _install_tar(self, path, expected_from_controller, state):
        req = self.req
        found = {}  # dest -> {"sha256", "mode"}
        staged = StagedFiles(None if self.check_mode else self.module)
        with staged:
            def sink(target, handle, archive_mode):
                dest = target.dest or path_under(req.dest, target.member.split("/"), "members")
                mode = target.mode if target.mode is not None else archive_mode
                real, current = installed_file(dest)
                if self.check_mode:
                    digest = hashlib.sha256()
                    for chunk in iter(lambda: handle.read(CHUNK), b""):
                        digest.update(chunk)
                    sha = digest.hexdigest()
                else:
                    sha = staged.stage(real, handle, mode, req.uid, req.gid)
                    if current is not None and current["sha256"] == sha:
                        staged.discard(real)  # same content: only the mode or owner may need fixing
                found[dest] = {"sha256": sha, "mode": "%04o" % mode}

            def link_sink(target, linkname):
                dest = path_under(req.dest, target.member.split("/"), "members")
                if not self.check_mode and (installed_link(dest) or {}).get("link") != linkname:
                    staged.stage_link(dest, linkname)
                found[dest] = {"link": linkname}

            read_members(path, req.strip, req.targets, sink, req.variable, req.artifact_name, link_sink=link_sink)
            if expected_from_controller:
                differing = sorted(d for d in found if file_digest(expected_from_controller.get(d, {"sha256": None})) != file_digest(found[d]))
                if differing or sorted(found) != sorted(expected_from_controller):
                    raise ArtifactError("%s: %s on the node does not hold what the controller read from it (%s); nothing was changed"
                                        % (req.variable, req.artifact_name, ", ".join(differing) or "other members"))
            comparison = Comparison(found, req.uid, req.gid, req.artifact_name)
            self.result["files"] = {dest: file_digest(want) for dest, want in found.items()}
            outcome = self._finish(comparison, comparison.content, comparison.metadata, staged)
        if state is not None and not self.check_mode:
            recorded = state.load()
            record = {"checksum": req.checksum, "source": req.url or req.artifact_name, "files": found}
            if not recorded or {k: recorded.get(k) for k in ("checksum", "files")} != {k: record[k] for k in ("checksum", "files")}:
                state.save(self.module, record)
        return outcome

    def _finish(self, comparison, content, metadata, staged=None):
        """Commit the staged files and fix modes/owners (not in check mode); fill in the result."""
        req = self.req
        changed = sorted(set(content) | set(metadata))
        if not content and not metadata:
            self.result["reasons"] = []
        if changed:
            self.result["changed"] = True
            self.result["reasons"] = comparison.reasons
            if self.module._diff:
                self.result["diff"] = comparison.diff(req.uid, req.gid, changed)
        if not self.check_mode:
            if staged is not None and content:
                try:
                    staged.commit()
                except ManagedFileError as exc:
                    raise ArtifactError("%s: %s" % (req.variable, exc)) from None
            comparison.fix_metadata(req.uid, req.gid, metadata)
        self.result["installed"] = sorted(content)
        return self.result

    # ---------------------------------------------------------------- packages (.deb, .rpm)
    def _package(self, inspect_only):
        from ansible_collections.kubeforge.cluster.plugins.module_utils._packages import PackagesError, ensure

        req = self.req
        manager = self.package_manager()
        recorded = find_package_state(req.state_dir, req.checksum) if req.checksum else None
        if recorded:
            name, version = recorded["package"], recorded["package_version"]
            now = manager.query({name})
            self.result["package"] = {"name": name, "version": version}
            if now.get(name, {}).get("version") == version:
                return self.result
            current = now.get(name, {}).get("version") or "nothing"
            self.result["reasons"].append("%s %s from %s is not installed (%s is)" % (name, version, req.artifact_name, current))
        else:
            self.result["reasons"].append("no record in %s that %s was installed" % (req.state_dir, req.artifact_name))
        if inspect_only:
            self.result.update(changed=True, transfer_needed=True)
            return self.result
        path = self._artifact_on_node()
        try:
            name, version = manager.inspect_file(path)
            outcome = ensure(manager, [], [path], allow_downgrade=req.params["allow_downgrade"], check_mode=self.check_mode)
        except PackagesError as exc:
            raise ArtifactError("%s: %s" % (req.variable, exc.msg), **exc.extra) from None
        for warning in outcome.warnings:
            self.module.warn(warning)
        self.result["package"] = {"name": name, "version": version}
        self.result["changed"] = outcome.changed
        self.result["installed"] = outcome.installed
        if not outcome.changed:
            self.result["reasons"] = []
        if self.module._diff and outcome.changed:
            self.result["diff"] = outcome.diff()
        if not self.check_mode:
            StateFile(req.state_dir, "package-" + name).save(self.module, {
                "checksum": req.checksum, "source": req.url or req.artifact_name, "package": name, "package_version": version})
        return self.result
