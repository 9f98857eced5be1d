# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``etcdctl`` (API v3, 3.4 and 3.5) over TLS with a client certificate: argv lists in, parsed JSON out.

Every call has a dial and a command timeout, runs under ``LANG=C`` and raises ``EtcdctlError`` with etcdctl's own
last error line, never with a certificate or key. Member IDs are returned as etcd prints them in its logs and
tables (lower-case hex), which is also what ``member remove``/``promote``/``move-leader`` take.
"""

from __future__ import annotations

import json
import re

C_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C", "ETCDCTL_API": "3"}
_ERROR_RE = re.compile(r"^(Error|Failed)[: ].*", re.M)
_STATUS_FAILED_RE = re.compile(r"Failed to get the status of endpoint (\S+) \((.*)\)")


class EtcdctlError(Exception):
    """etcdctl failed; ``detail`` is its error line (e.g. ``context deadline exceeded``)."""

    def __init__(self, what, detail, rc=None):
        self.what, self.detail, self.rc = what, detail, rc
        super().__init__("etcdctl %s failed: %s" % (what, detail))


def hex_id(number):
    return "%x" % number


def _json_list(stdout):
    try:
        document = json.loads(stdout) if stdout and stdout.strip() else []
    except ValueError:
        return []
    return [entry for entry in document if isinstance(entry, dict)] if isinstance(document, list) else []


def _error_line(stdout, stderr):
    text = "%s\n%s" % (stderr or "", stdout or "")
    found = [match.group(0) for match in _ERROR_RE.finditer(text)]
    if found:
        return found[-1].strip()
    for line in reversed(text.strip().splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            return line.strip()[:300]
        if isinstance(record, dict) and record.get("error"):
            return str(record["error"])[:300]
    return "no output"


class Etcdctl:
    """etcdctl with the TLS files of one client identity, talking to ``endpoints`` unless a call names others."""

    def __init__(self, binary, run, endpoints, ca_file, cert_file, key_file, dial_timeout=3, command_timeout=10):
        self.binary, self.run, self.endpoints = binary, run, list(endpoints)
        self.tls = ["--cacert", ca_file, "--cert", cert_file, "--key", key_file]
        self.timeouts = ["--dial-timeout=%ds" % dial_timeout, "--command-timeout=%ds" % command_timeout]

    def argv(self, args, endpoints=None):
        return [self.binary, "--endpoints=%s" % ",".join(endpoints or self.endpoints)] + self.tls + self.timeouts + list(args)

    def call(self, what, args, endpoints=None, parse=True):
        rc, stdout, stderr = self.run(self.argv(args, endpoints))
        if parse:
            try:
                document = json.loads(stdout) if rc == 0 and stdout and stdout.strip() else None
            except ValueError:
                document = None
            if document is None:
                raise EtcdctlError(what, _error_line(stdout, stderr), rc)
            return document
        if rc != 0:
            raise EtcdctlError(what, _error_line(stdout, stderr), rc)
        return stdout

    # Reads --------------------------------------------------------------------------------------------------
    def status(self, endpoints):
        """``endpoint status``: ({endpoint: status dict}, {endpoint: error}) in one call."""
        rc, stdout, stderr = self.run(self.argv(["endpoint", "status", "-w", "json"], endpoints))
        entries = _json_list(stdout)
        results = {}
        for entry in entries:
            converted, _error = self._status_entry(entry)
            if converted is not None:
                results[entry.get("Endpoint")] = converted
        errors = {m.group(1): m.group(2) for m in _STATUS_FAILED_RE.finditer(stderr or "")}
        for endpoint in endpoints:
            if endpoint not in results and endpoint not in errors:
                errors[endpoint] = _error_line(stdout, stderr) if rc else "no status"
        return results, errors

    def health(self, endpoints):
        """``endpoint health``: ({endpoint: {"health", "took", "error"}}, {endpoint: error})."""
        rc, stdout, stderr = self.run(self.argv(["endpoint", "health", "-w", "json"], endpoints))
        results, errors = {}, {}
        for entry in _json_list(stdout):
            results[entry.get("endpoint")], error = self._health_entry(entry)
            if error:
                errors[entry.get("endpoint")] = error
        for endpoint in endpoints:
            if endpoint not in results:
                errors[endpoint] = _error_line(stdout, stderr) if rc else "no answer"
        return results, errors

    @staticmethod
    def _status_entry(entry):
        status = entry.get("Status") or {}
        header = status.get("header") or {}
        if not header:
            return None, "no status"
        return {
            "id": hex_id(header.get("member_id", 0)),
            "cluster_id": hex_id(header.get("cluster_id", 0)),
            "leader": hex_id(status.get("leader", 0)) if status.get("leader") else None,
            "version": status.get("version"),
            "raft_index": status.get("raftIndex", 0),
            "raft_applied_index": status.get("raftAppliedIndex", 0),
            "raft_term": status.get("raftTerm", 0),
            "db_size": status.get("dbSize", 0),
            "is_learner": bool(status.get("isLearner", False)),
            "errors": status.get("errors") or [],
        }, None

    @staticmethod
    def _health_entry(entry):
        healthy = bool(entry.get("health"))
        return {"health": healthy, "took": entry.get("took"), "error": entry.get("error")}, None if healthy else (
            entry.get("error") or "unhealthy")

    def members(self, endpoints=None):
        """``member list``: [{id, name, peer_urls, client_urls, is_learner, started}] (unstarted members have no name)."""
        document = self.call("member list", ["member", "list", "-w", "json"], endpoints)
        return [{
            "id": hex_id(member["ID"]),
            "name": member.get("name", ""),
            "peer_urls": member.get("peerURLs") or [],
            "client_urls": member.get("clientURLs") or [],
            "is_learner": bool(member.get("isLearner", False)),
            "started": bool(member.get("name")),
        } for member in document.get("members", [])]

    # Changes -------------------------------------------------------------------------------------------------
    def member_add(self, name, peer_urls, learner, endpoints=None):
        args = ["member", "add", name, "--peer-urls=%s" % ",".join(peer_urls), "-w", "json"] + (["--learner"] if learner else [])
        document = self.call("member add", args, endpoints)
        return hex_id(document["member"]["ID"])

    def member_promote(self, member_id, endpoints=None):
        return self.call("member promote", ["member", "promote", member_id], endpoints, parse=False)

    def member_remove(self, member_id, endpoints=None):
        return self.call("member remove", ["member", "remove", member_id], endpoints, parse=False)

    def move_leader(self, member_id, endpoints):
        """Transfer leadership to ``member_id``; ``endpoints`` must include the current leader's."""
        return self.call("move-leader", ["move-leader", member_id], endpoints, parse=False)

    def snapshot_save(self, path, endpoint):
        return self.call("snapshot save", ["snapshot", "save", path], [endpoint], parse=False)
