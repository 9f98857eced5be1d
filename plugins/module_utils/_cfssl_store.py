# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate/key pairs on disk, replaced together: one directory per generation and an atomic symlink switch.

Layout under the PKI directory (0700)::

    <dir>/<name> -> .generations/<name>.<id>     (relative symlink, replaced with rename(2))
    <dir>/.generations/<name>.<id>/cert.pem      0644
    <dir>/.generations/<name>.<id>/key.pem       0600
    <dir>/.generations/<name>.<id>/csr.pem       0644 (the request of the key, so a re-issue can keep the key)

A reader that opens ``<dir>/<name>/cert.pem`` and ``<dir>/<name>/key.pem`` gets both from the old or both from
the new generation: the files of a generation never change after the switch. The previous generation stays (a
reader may be between its two opens, and it is the backup); older ones are removed. The same code serves the
CA host (``cfssl_cert``) and the nodes (``etcd_certs``).
"""

from __future__ import annotations

import os
import shutil
import uuid

GENERATIONS = ".generations"


class StoreError(Exception):
    """The directory cannot hold a pair safely; the message names the path and the fix."""


def read_generation(directory, name, files):
    """``{file: bytes or None}`` of the current generation of ``name`` (all None when there is none)."""
    link = os.path.join(directory, name)
    if os.path.lexists(link) and not os.path.islink(link):
        raise StoreError("%s is not a symlink to a generation directory (it was not made by this collection); "
                         "move it away" % link)
    found = {}
    for filename in files:
        try:
            with open(os.path.join(link, filename), "rb") as handle:
                found[filename] = handle.read()
        except FileNotFoundError:
            found[filename] = None
        except OSError as exc:
            raise StoreError("cannot read %s: %s" % (os.path.join(link, filename), exc.strerror)) from None
    return found


def current_generation(directory, name):
    link = os.path.join(directory, name)
    return os.readlink(link) if os.path.islink(link) else None


def ensure_directory(path, mode=0o700, owner=None, group=None):
    """Create ``path`` (and parents) when missing; set mode/ownership of ``path`` itself. Returns True on change."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode)
        changed = True
    stat = os.stat(path)
    if stat.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    uid = stat.st_uid if owner is None else owner
    gid = stat.st_gid if group is None else group
    if (stat.st_uid, stat.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def _fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_generation(directory, name, files, owner=None, group=None, dir_mode=0o700):
    """Write ``files`` ({filename: (bytes, mode)}) as a new generation of ``name`` and switch the link to it.

    Returns the generation's directory. Nothing the link points to is modified; on any error the link still points
    to the old generation and the partial new one is removed.
    """
    link = os.path.join(directory, name)
    if os.path.lexists(link) and not os.path.islink(link):
        raise StoreError("%s is not a symlink to a generation directory; move it away" % link)
    generations = os.path.join(directory, GENERATIONS)
    ensure_directory(generations, dir_mode, owner, group)
    generation = "%s.%s" % (name, uuid.uuid4().hex[:12])
    target = os.path.join(generations, generation)
    os.mkdir(target, dir_mode)
    staged_link = os.path.join(directory, ".%s.link-%s" % (name, uuid.uuid4().hex[:8]))
    try:
        if owner is not None or group is not None:
            os.chown(target, -1 if owner is None else owner, -1 if group is None else group)
        os.chmod(target, dir_mode)
        for filename, (data, mode) in sorted(files.items()):
            path = os.path.join(target, filename)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as handle:
                if owner is not None or group is not None:
                    os.fchown(handle.fileno(), -1 if owner is None else owner, -1 if group is None else group)
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_directory(target)
        previous = current_generation(directory, name)
        os.symlink(os.path.join(GENERATIONS, generation), staged_link)
        os.replace(staged_link, link)
        _fsync_directory(directory)
    except BaseException:
        if os.path.lexists(staged_link):
            os.unlink(staged_link)
        shutil.rmtree(target, ignore_errors=True)
        raise
    _prune(generations, name, {generation, os.path.basename(previous) if previous else None})
    return target


def _prune(generations, name, keep):
    prefix = name + "."
    for entry in os.listdir(generations):
        if entry.startswith(prefix) and entry not in keep and "." not in entry[len(prefix):]:
            shutil.rmtree(os.path.join(generations, entry), ignore_errors=True)


def remove(directory, name):
    """Remove ``name``'s link and every generation of it. Returns True when something was removed."""
    link = os.path.join(directory, name)
    removed = False
    if os.path.islink(link):
        os.unlink(link)
        removed = True
    generations = os.path.join(directory, GENERATIONS)
    if os.path.isdir(generations):
        before = set(os.listdir(generations))
        _prune(generations, name, set())
        removed = removed or before != set(os.listdir(generations))
    return removed
