# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic of ``kubeforge.cluster.etcd_snapshot``: save a snapshot, and restore one without risking the data.

Restoring is two steps so that a member's data is replaced only after the snapshot is proven good on every member:
``staged`` checks the file (sha256, then ``snapshot status``, which verifies etcd's own hash) and restores it into
``<data_dir>.restore`` while etcd still runs; ``restored`` (etcd stopped) moves the old data aside to
``<data_dir>.before-restore-<time>`` and the staged directory into place. A marker file records which snapshot and
cluster token a directory holds, so both steps are idempotent.

``etcdutl`` (etcd 3.5+) is used when it exists, else ``etcdctl`` (3.4, where ``snapshot`` lives in etcdctl).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

MARKER = "kubeforge-restore.json"


class SnapshotError(Exception):
    """The snapshot cannot be saved, verified or restored; the message says which file and why."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SnapshotTool:
    """``snapshot status/restore`` through etcdutl or etcdctl, via ``run(argv) -> (rc, out, err)``."""

    def __init__(self, run, etcdutl=None, etcdctl=None):
        if not etcdutl and not etcdctl:
            raise SnapshotError("neither etcdutl nor etcdctl was found: install etcd-server (etcdutl, 3.5) or etcd-client (3.4)")
        self.run, self.binary = run, etcdutl or etcdctl

    def status(self, path):
        rc, stdout, stderr = self.run([self.binary, "snapshot", "status", path, "-w", "json"])
        try:
            document = json.loads(stdout) if rc == 0 else None
        except ValueError:
            document = None
        if not isinstance(document, dict) or "hash" not in document:
            raise SnapshotError("%s is not a usable etcd snapshot: %s" % (path, _last_line(stderr or stdout)))
        return {"hash": document["hash"], "revision": document.get("revision"), "total_keys": document.get("totalKey"),
                "total_size": document.get("totalSize")}

    def restore(self, path, data_dir, name, initial_cluster, token, peer_urls):
        argv = [self.binary, "snapshot", "restore", path, "--data-dir", data_dir, "--name", name, "--initial-cluster",
                initial_cluster, "--initial-cluster-token", token, "--initial-advertise-peer-urls", ",".join(peer_urls)]
        rc, stdout, stderr = self.run(argv)
        if rc != 0:
            raise SnapshotError("restoring %s into %s failed: %s" % (path, data_dir, _last_line(stderr or stdout)))


def _last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else "no message"


def read_marker(directory):
    try:
        with open(os.path.join(directory, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def stage(tool, params, check_mode):
    """Verify the snapshot and restore it into ``<data_dir>.restore``."""
    path, data_dir = params["path"], params["data_dir"].rstrip("/")
    staging = data_dir + ".restore"
    want = {"sha256": params["sha256"], "token": params["initial_cluster_token"], "name": params["name"]}
    if read_marker(data_dir) == want:
        return {"changed": False, "staging_dir": staging, "already_restored": True}
    if not os.path.isfile(path):
        raise SnapshotError("snapshot %s does not exist on this host" % path)
    actual = sha256_file(path)
    if actual != params["sha256"]:
        raise SnapshotError("snapshot %s has sha256 %s, expected %s: the copy is damaged or another file; nothing was "
                            "changed" % (path, actual, params["sha256"]))
    status = tool.status(path)
    if read_marker(staging) == want:
        return {"changed": False, "staging_dir": staging, "snapshot": status}
    if check_mode:
        return {"changed": True, "staging_dir": staging, "snapshot": status}
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    tool.restore(path, staging, params["name"], params["initial_cluster"], params["initial_cluster_token"], params["peer_urls"])
    with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as handle:
        json.dump(want, handle)
    return {"changed": True, "staging_dir": staging, "snapshot": status}


def swap(params, active, chown, check_mode):
    """Put the staged data in place of ``data_dir`` (etcd must be stopped); the old data is kept beside it."""
    data_dir = params["data_dir"].rstrip("/")
    staging = data_dir + ".restore"
    want = {"sha256": params["sha256"], "token": params["initial_cluster_token"], "name": params["name"]}
    if read_marker(data_dir) == want:
        return {"changed": False, "data_dir": data_dir, "previous_data_dir": None}
    if read_marker(staging) != want:
        raise SnapshotError("%s does not hold this snapshot restored for member %s with token %s; run state=staged first"
                            % (staging, params["name"], params["initial_cluster_token"]))
    if active:
        raise SnapshotError("etcd is still running on this host; stop it before the data directory %s is replaced" % data_dir)
    previous = "%s.before-restore-%s" % (data_dir, time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
    if check_mode:
        return {"changed": True, "data_dir": data_dir, "previous_data_dir": previous if os.path.exists(data_dir) else None}
    if os.path.exists(data_dir):
        os.rename(data_dir, previous)
    else:
        previous = None
    os.rename(staging, data_dir)
    os.chmod(data_dir, 0o700)
    chown(data_dir)
    return {"changed": True, "data_dir": data_dir, "previous_data_dir": previous}


def save(etcdctl, tool, path, endpoint, check_mode):
    """``etcdctl snapshot save`` from ``endpoint`` into ``path`` (via a partial file), verified before it is kept."""
    if check_mode:
        return {"changed": True, "path": path}
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    partial = path + ".part"
    if os.path.exists(partial):
        os.unlink(partial)
    etcdctl.snapshot_save(partial, endpoint)
    status = tool.status(partial)
    os.chmod(partial, 0o600)
    os.rename(partial, path)
    return {"changed": True, "path": path, "sha256": sha256_file(path), "size": os.path.getsize(path), "snapshot": status,
            "endpoint": endpoint}
