# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managed files: the collection's one symlink rule and one safe replace (stdlib + AnsibleModule only).

Symlink rule (docs/SECURITY.md): a managed file may be a symlink; the module reads and replaces the regular
file it points to and the link stays. A link to something that is not a regular file (``/dev/null``, which is
how a drop-in is masked, a directory, a device) or a dangling link is refused with a message naming both.

Replace rule: the new content is staged in the target's directory and moved into place with
``module.atomic_move`` while holding an exclusive ``flock`` on that directory; when the caller says what it
read (``expected``), the file is compared again under the lock and a change by another writer since then
fails the run instead of being overwritten (no lost update).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile


class ManagedFileError(Exception):
    """The managed file cannot be read or replaced safely; the message names the file and the fix."""


class ChangedMeanwhileError(ManagedFileError):
    """The file is not what the caller read any more: another writer changed it (nothing was written)."""


def resolve_managed(path):
    """The regular file ``path`` stands for (itself, or a symlink's final target, which may not exist yet
    only when ``path`` itself does not exist)."""
    if not os.path.islink(path):
        if os.path.exists(path) and not os.path.isfile(path):
            raise ManagedFileError("%s exists and is not a regular file; move it away or choose another path" % path)
        return path
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        raise ManagedFileError("%s is a symlink to %s, which does not exist; create %s or remove the link"
                               % (path, target, target)) from None
    if not stat.S_ISREG(mode):
        raise ManagedFileError("%s is a symlink to %s, which is not a regular file (a link to /dev/null masks a file); "
                               "remove the link or point it at a regular file" % (path, target))
    return target


def read_bytes(path):
    """The content of ``path`` or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ManagedFileError("%s is a directory, not a file" % path) from None
    except OSError as exc:
        raise ManagedFileError("cannot read %s: %s" % (path, exc.strerror)) from None


def read_text(path):
    """``read_bytes`` decoded as UTF-8; a file that is not UTF-8 is named in the error."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManagedFileError("%s is not UTF-8 text (byte 0x%02x at offset %d); fix or remove the file"
                               % (path, data[exc.start], exc.start)) from None


def read_managed(path):
    """``(resolved path, bytes or None, text or None)`` of a managed file under the symlink rule; a file that is
    not UTF-8 is named in the error."""
    resolved = resolve_managed(path)
    data = read_bytes(resolved)
    if data is None:
        return resolved, None, None
    try:
        return resolved, data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManagedFileError("%s is not UTF-8 text (byte 0x%02x at offset %d); fix or remove the file"
                               % (path, data[exc.start], exc.start)) from None


def sha256_hex(data):
    return None if data is None else hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def directory_lock(directory):
    """An exclusive flock on ``directory`` (its inode never changes when files in it are replaced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def replace_file(module, path, content, mode=0o644, expected=None, backup=False):
    """Replace ``path`` (already resolved with ``resolve_managed``) with ``content`` (str or bytes).

    ``expected`` is what the caller based ``content`` on: the bytes it read or their sha256 hex, ``False`` when
    the file did not exist, ``None`` to skip the check. An existing file
    keeps its owner, mode and SELinux context (``atomic_move``); a new one gets ``mode``; a missing parent
    directory is created 0755. Returns the backup file's path or None.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, staged = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return install_staged(module, path, staged, mode=mode, expected=expected, backup=backup)


def install_staged(module, path, staged, mode=0o644, expected=None, backup=False):
    """Move ``staged`` (a file already written in ``path``'s own directory) over ``path``, with the rules of
    ``replace_file``; ``staged`` is gone afterwards, also on failure. ``ChangedMeanwhileError`` when
    ``expected`` no longer holds."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        with directory_lock(directory):
            if expected is not None and not _unchanged(path, expected):
                raise ChangedMeanwhileError("%s was changed by someone else while this task worked on it; nothing was written. "
                                            "Run the task again to merge into the new content" % path)
            backup_file = module.backup_local(path) if backup and os.path.exists(path) else None
            with open(staged, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(staged, mode)
            if os.path.exists(path):
                module.atomic_move(staged, path, unsafe_writes=False)
            else:
                # a new file: a rename keeps ``mode`` (atomic_move would give it the umask's default for a moment)
                os.rename(staged, path)
                if hasattr(module, "set_default_selinux_context"):
                    module.set_default_selinux_context(path, False)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
    return backup_file


def _unchanged(path, expected):
    current = read_bytes(path)
    if expected is False:
        return current is None
    if isinstance(expected, str):
        return sha256_hex(current) == expected
    return current == expected


def remove_file(module, path, expected=None, backup=False):
    """Remove ``path`` (the name itself: a symlink is removed, its target stays) under the directory lock.

    ``expected`` as for ``replace_file``: a change by another writer since the caller read the file fails the
    run and nothing is removed. Returns the backup file's path or None; a missing file is not an error.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return None
    with directory_lock(directory):
        if expected is not None and not _unchanged(path, expected):
            raise ManagedFileError("%s was changed by someone else while this task worked on it; nothing was removed. "
                                   "Run the task again" % path)
        if not os.path.lexists(path):
            return None
        backup_file = module.backup_local(path) if backup and os.path.isfile(path) else None
        os.unlink(path)
    return backup_file


def write_file_atomic(module, path, text, new_file_mode=0o644):
    """``replace_file`` without the concurrency check (kept for callers that own their file outright)."""
    replace_file(module, path, text, mode=new_file_mode)


class StagedFiles:
    """Several files replaced together: each is staged in its destination's directory, then all are renamed.

    Staging writes and fsyncs a hidden temporary file next to the destination with its final mode and owner (and the
    SELinux default context), so nothing visible changes until ``commit``. ``commit`` takes the directory locks,
    keeps a hard link to each file it replaces and renames every staged file over its destination; if one rename
    fails, the ones already done are put back from those links, so either all destinations have their new content or
    none has. Used as a context manager, whatever was not committed is removed.
    """

    def __init__(self, module=None):
        self.module = module
        self.staged = {}  # dest -> staged path, in staging order

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False

    def stage(self, dest, source, mode, uid=-1, gid=-1):
        """Stage ``source`` (a readable binary file object) for ``dest``; returns the sha256 of what was written."""
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, staged = tempfile.mkstemp(dir=directory, prefix=".%s.kubeforge-" % os.path.basename(dest))
        self.discard(dest)
        self.staged[dest] = staged
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as handle:
            for chunk in iter(lambda: source.read(1024 * 1024), b""):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(staged, mode)
        if uid != -1 or gid != -1:
            os.chown(staged, uid, gid)
            os.chmod(staged, mode)  # chown clears set-id bits
        if self.module is not None and self.module.selinux_enabled():
            context = self.module.selinux_default_context(dest)
            self.module.set_context_if_different(staged, context, False)
        return digest.hexdigest()

    def stage_link(self, dest, target):
        """Stage a symbolic link to ``target`` for ``dest`` (replaced by ``commit`` like a file)."""
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        self.discard(dest)
        for _attempt in range(100):
            staged = os.path.join(directory, ".%s.kubeforge-%s" % (os.path.basename(dest), os.urandom(6).hex()))
            try:
                os.symlink(target, staged)
            except FileExistsError:
                continue
            self.staged[dest] = staged
            return staged
        raise ManagedFileError("cannot create a temporary link next to %s" % dest)

    def discard(self, dest=None):
        """Remove the staged file of ``dest`` (every staged file when None)."""
        for key in ([dest] if dest is not None else list(self.staged)):
            staged = self.staged.pop(key, None)
            if staged and os.path.lexists(staged):
                os.unlink(staged)

    def commit(self):
        """Rename every staged file over its destination (all or none); returns the destinations replaced."""
        directories = sorted({os.path.dirname(dest) for dest in self.staged})
        with contextlib.ExitStack() as stack:
            for directory in directories:
                stack.enter_context(directory_lock(directory))
            kept = {}
            done = []
            try:
                for dest in self.staged:
                    if os.path.lexists(dest):
                        link = "%s.kubeforge-old-%s" % (os.path.join(os.path.dirname(dest), "." + os.path.basename(dest)), os.urandom(4).hex())
                        try:
                            os.link(dest, link, follow_symlinks=False)
                            kept[dest] = link
                        except OSError:
                            pass  # no hard links here: this one file cannot be put back
                for dest, staged in self.staged.items():
                    os.rename(staged, dest)
                    done.append(dest)
            except OSError as exc:
                for dest in reversed(done):
                    if dest in kept:
                        os.rename(kept.pop(dest), dest)
                    else:
                        os.unlink(dest)
                raise ManagedFileError("replacing %s failed (%s); every file was left as it was" % (", ".join(self.staged), exc)) from None
            finally:
                for link in kept.values():
                    if os.path.lexists(link):
                        os.unlink(link)
                for dest in done:
                    self.staged.pop(dest, None)
        return done
