# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of kubeforge.cluster.containerd_config: read, run containerd, install (stdlib + AnsibleModule).

Three operations, one module run each (the controller does the TOML work in between):

``inspect``  the file (the symlink rule of ``_files``), its sha256, ``containerd --version``, and either
             ``containerd config default`` (missing or comment-only file) or ``config dump`` of the file
             as it is (what a converged run needs to be judged: then the task makes no other call).
``dump``     write the candidate next to the file (0600, ``.<name>.kubeforge-*.candidate``; in check mode
             in the module's own temp dir) and run ``containerd --config <candidate> config dump`` (or
             ``config migrate``); the candidate stays for ``install`` unless told otherwise.
``install``  move that candidate (or content given inline when nothing was validated) over the file
             under the directory lock, only if the file is still what ``inspect`` read (sha256).
``discard``  remove a candidate that will not be installed.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.kubeforge.cluster.plugins.module_utils._files import (
    ChangedMeanwhileError,
    ManagedFileError,
    install_staged,
    read_bytes,
    replace_file,
    resolve_managed,
    sha256_hex,
)

C_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
CANDIDATE_SUFFIX = ".candidate"


class NodeError(Exception):
    """A failure on the node; ``extra`` (rc, stdout, stderr, conflict) goes into the module result."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def is_blank(text):
    """True when a TOML text holds no data (only blank lines and comments): it is then started from the default."""
    return all(not line.strip() or line.strip().startswith("#") for line in text.splitlines())


def find_binary(module, containerd_path):
    """The containerd executable, or None when there is none; a path that exists but cannot run is an error."""
    if "/" in containerd_path:
        if not os.path.exists(containerd_path):
            return None
        if not os.path.isfile(containerd_path) or not os.access(containerd_path, os.X_OK):
            raise NodeError("containerd_path %s exists but is not an executable file; point containerd_path at the containerd binary"
                            % containerd_path)
        return containerd_path
    return module.get_bin_path(containerd_path)


def run(module, argv):
    rc, out, err = module.run_command(argv, environ_update=C_ENV)
    return {"rc": rc, "stdout": out, "stderr": err}


def _resolve(path):
    try:
        return resolve_managed(path)
    except ManagedFileError as exc:
        raise NodeError(str(exc)) from None


def _read(path):
    resolved = _resolve(path)
    try:
        data = read_bytes(resolved)
    except ManagedFileError as exc:
        raise NodeError(str(exc)) from None
    if data is None:
        return resolved, None, None
    try:
        return resolved, data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NodeError("%s is not UTF-8 text (byte 0x%02x at offset %d); TOML files are UTF-8: fix or remove the file"
                        % (resolved, data[exc.start], exc.start)) from None


def inspect(module, path, containerd_path, dump_current):
    resolved, data, text = _read(path)
    result = {"resolved": resolved, "exists": data is not None, "content": text or "", "sha256": sha256_hex(data),
              "binary": None, "version": None, "default": None, "current_dump": None}
    binary = find_binary(module, containerd_path)
    if binary is None:
        return result
    result["binary"] = binary
    result["version"] = run(module, [binary, "--version"])
    if result["version"]["rc"] != 0:
        return result  # the controller decides: fail, or warn when validate is false
    if data is None or is_blank(text):
        result["default"] = run(module, [binary, "config", "default"])
    elif dump_current:
        dump = run(module, [binary, "--config", resolved, "config", "dump"])
        if sha256_hex(read_bytes(resolved)) == result["sha256"]:  # else the dump is not of what was read
            result["current_dump"] = dump
    return result


def _candidate_name(resolved):
    return ".%s.kubeforge-" % os.path.basename(resolved)


def dump(module, path, containerd_path, candidate, command, stage):
    binary = find_binary(module, containerd_path)
    if binary is None:
        raise NodeError("containerd (%s) is not on the node any more; install it or set containerd_path" % containerd_path)
    resolved = _resolve(path)
    stage = stage and not module.check_mode and command == "dump"
    directory = os.path.dirname(resolved) if stage else module.tmpdir
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)  # a fresh node may have no /etc/containerd yet; install would create it anyway
    content = candidate.encode("utf-8")
    fd, staged = tempfile.mkstemp(dir=directory, prefix=_candidate_name(resolved), suffix=CANDIDATE_SUFFIX)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    result = run(module, [binary, "--config", staged, "config", command])
    keep = stage and result["rc"] == 0
    if not keep:
        os.unlink(staged)
    result.update(staged=staged if keep else None, staged_sha256=sha256_hex(content) if keep else None)
    return result


def _own_candidate(resolved, staged):
    """``staged`` must be a candidate this module wrote next to ``resolved``: nothing else is ever moved."""
    name = os.path.basename(staged)
    if (os.path.dirname(staged) != os.path.dirname(resolved) or not name.startswith(_candidate_name(resolved))
            or not name.endswith(CANDIDATE_SUFFIX) or not re.match(r"^[A-Za-z0-9_.-]+$", name[len(_candidate_name(resolved)):])):
        raise NodeError("%s is not a candidate file of %s; nothing was changed" % (staged, resolved))


def install(module, path, expected_sha256, backup, mode, staged=None, staged_sha256=None, content=None):
    if module.check_mode:
        raise NodeError("install was called in check mode; nothing was changed")  # the controller never does this
    resolved = _resolve(path)
    if staged is not None:
        _own_candidate(resolved, staged)
    try:
        if staged is not None:
            if sha256_hex(read_bytes(staged)) != staged_sha256:
                raise NodeError("the validated candidate %s changed or vanished before it was installed; nothing was changed" % staged)
            backup_file = install_staged(module, resolved, staged, mode=mode, expected=expected_sha256 or False, backup=backup)
        else:
            backup_file = replace_file(module, resolved, content, mode=mode, expected=expected_sha256 or False, backup=backup)
    except ChangedMeanwhileError as exc:
        raise NodeError(str(exc), conflict=True) from None
    except ManagedFileError as exc:
        raise NodeError(str(exc)) from None
    finally:
        if staged is not None and os.path.exists(staged):
            os.unlink(staged)
    return {"backup_file": backup_file, "resolved": resolved}


def discard(module, path, staged):
    resolved = _resolve(path)
    _own_candidate(resolved, staged)
    if os.path.exists(staged):
        os.unlink(staged)
    return {}
