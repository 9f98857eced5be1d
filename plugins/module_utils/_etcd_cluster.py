# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``etcd_health`` and ``etcd_member`` decide: the cluster as etcd sees it, and safe membership changes.

Everything goes through an ``ops`` object (``etcdctl``: an ``_etcdctl.Etcdctl``; ``systemctl(args)``;
``monotonic()``; ``sleep(seconds)``), so unit tests drive it with a scripted cluster and integration tests with
real etcd processes.

Rules the changes follow, one member at a time:

* a member is restarted only when the others keep quorum without it (a 1-member cluster excepted), and when it
  leads, leadership is first handed to a healthy member (preferably one already restarted in this run); the
  call returns only when the member answers ``endpoint health``, sees a leader and has applied the raft index
  the cluster had before the restart;
* a member joins as a learner (``member add --learner``), is started and promoted once it has caught up, so a new
  member that never comes up cannot cost the cluster its quorum;
* a member is removed only when the remaining voters keep quorum; a leader hands leadership over first.
"""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.module_utils._etcdctl import EtcdctlError


class ClusterError(Exception):
    """The change is refused or did not complete; the message names the member and the reason."""


class Member:
    def __init__(self, listed):
        self.id = listed["id"]
        self.name = listed["name"]
        self.peer_urls = listed["peer_urls"]
        self.client_urls = listed["client_urls"]
        self.is_learner = listed["is_learner"]
        self.started = listed["started"]
        self.endpoint = self.client_urls[0] if self.client_urls else None
        self.status = None
        self.healthy = False
        self.error = None if self.started else "not started"

    def as_dict(self, leader_id):
        status = self.status or {}
        return {"name": self.name, "id": self.id, "endpoint": self.endpoint, "peer_urls": self.peer_urls,
                "healthy": self.healthy, "error": self.error, "is_learner": self.is_learner, "started": self.started,
                "is_leader": self.id == leader_id, "version": status.get("version"),
                "raft_index": status.get("raft_index"), "raft_applied_index": status.get("raft_applied_index"),
                "db_size": status.get("db_size")}


class View:
    """One look at the cluster: members with their status and health, and the leader they agree on."""

    def __init__(self, members, leader_id, cluster_id):
        self.members, self.leader_id, self.cluster_id = members, leader_id, cluster_id

    def member(self, name=None, peer_urls=None):
        for member in self.members:
            if name and member.name == name or peer_urls and set(member.peer_urls) & set(peer_urls):
                return member
        return None

    @property
    def voters(self):
        return [m for m in self.members if not m.is_learner]

    @property
    def leader(self):
        return next((m for m in self.members if m.id == self.leader_id), None)

    @property
    def max_index(self):
        return max([m.status["raft_index"] for m in self.members if m.status] or [0])

    def as_dict(self):
        leader = self.leader
        return {"cluster_id": self.cluster_id, "leader": leader.name if leader else None,
                "members": [m.as_dict(self.leader_id) for m in self.members]}


def look(etcdctl, endpoints):
    """The cluster seen through ``endpoints`` (any of them answering ``member list`` is enough)."""
    members = [Member(entry) for entry in etcdctl.members(endpoints)]
    urls = [m.endpoint for m in members if m.endpoint]
    status, status_errors = etcdctl.status(urls) if urls else ({}, {})
    health, health_errors = etcdctl.health(urls) if urls else ({}, {})
    leaders, cluster_ids = {}, set()
    for member in members:
        if not member.endpoint:
            continue
        member.status = status.get(member.endpoint)
        member.healthy = bool(health.get(member.endpoint, {}).get("health")) and member.status is not None
        member.error = health_errors.get(member.endpoint) or status_errors.get(member.endpoint)
        if member.status:
            cluster_ids.add(member.status["cluster_id"])
            if member.status["leader"]:
                leaders[member.status["leader"]] = leaders.get(member.status["leader"], 0) + 1
            if not member.status["leader"] and not member.error:
                member.error = "sees no leader"
                member.healthy = False
    leader_id = max(leaders, key=leaders.get) if leaders else None
    return View(members, leader_id, sorted(cluster_ids)[0] if cluster_ids else None)


def describe_unhealthy(members):
    return "; ".join("%s (%s): %s" % (m.name or m.peer_urls[0], m.endpoint or "no client URL", m.error or "unhealthy")
                     for m in members)


def health_problems(view, name, expected=None):
    """Every reason the cluster, seen from member ``name``, is not healthy (empty list: healthy)."""
    problems = []
    me = view.member(name)
    if me is None:
        problems.append("member %s is not in the member list (members: %s)" % (name, ", ".join(m.name or m.id for m in view.members)))
    unhealthy = [m for m in view.members if not m.healthy]
    if unhealthy:
        problems.append("unhealthy: " + describe_unhealthy(unhealthy))
    if view.leader is None:
        problems.append("no leader")
    learners = [m.name for m in view.members if m.is_learner]
    if learners:
        problems.append("learners not promoted: %s" % ", ".join(learners))
    if expected is not None:
        names = sorted(m.name for m in view.members)
        missing = sorted(set(expected) - set(names))
        if missing:
            problems.append("member list is [%s], the etcd hosts are [%s]: %s not members" % (
                ", ".join(names), ", ".join(sorted(expected)), ", ".join(missing)))
    return problems


def extra_members(view, expected):
    """Members that are not among ``expected`` (hosts that left the group; playbooks/etcd_scale.yml removes them)."""
    return sorted(m.name or m.id for m in view.members if m.name not in set(expected or ()))


def wait_for(ops, timeout, what, probe):
    """Call ``probe()`` until it returns a true value or ``timeout`` seconds passed; the last error is reported."""
    deadline = ops.monotonic() + timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (EtcdctlError, ClusterError) as exc:
            last = str(exc)
        if ops.monotonic() >= deadline:
            raise ClusterError("%s did not happen within %d s%s" % (what, timeout, " (last error: %s)" % last if last else ""))
        ops.sleep(0.25)


def _member_caught_up(ops, endpoint, index):
    status, errors = ops.etcdctl.status([endpoint])
    if endpoint in errors:
        raise ClusterError(errors[endpoint])
    entry = status[endpoint]
    if not entry["leader"]:
        raise ClusterError("no leader yet")
    if entry["raft_applied_index"] < index:
        raise ClusterError("applied index %d, cluster at %d" % (entry["raft_applied_index"], index))
    health, errors = ops.etcdctl.health([endpoint])
    if endpoint in errors:
        raise ClusterError(errors[endpoint])
    return entry


def _transfer_leadership(ops, view, me, prefer):
    """Move leadership from ``me`` to a healthy voter (first of ``prefer`` when possible). Returns its name."""
    candidates = [m for m in view.voters if m.healthy and m.id != me.id and m.endpoint]
    if not candidates:
        return None
    preferred = [m for name in prefer for m in candidates if m.name == name]
    target = preferred[0] if preferred else max(candidates, key=lambda m: m.status["raft_applied_index"])
    ops.etcdctl.move_leader(target.id, [me.endpoint, target.endpoint])
    return target.name


def _systemctl(ops, args, member):
    rc, stdout, stderr = ops.systemctl(args)
    if rc != 0:
        raise ClusterError("systemctl %s on member %s failed (rc=%s): %s" % (" ".join(args), member, rc, (stderr or stdout).strip()[-400:]))


def restart(ops, name, service, endpoints, prefer=(), timeout=120, check_mode=False):
    """Restart member ``name`` (the host this runs on) without costing the cluster its quorum."""
    view = look(ops.etcdctl, endpoints)
    me = view.member(name)
    if me is None:
        raise ClusterError("member %s is not in the member list; it cannot be restarted as a member" % name)
    voters = view.voters
    quorum = len(voters) // 2 + 1
    others = [m for m in voters if m.id != me.id and m.healthy]
    if len(voters) > 1 and len(others) < quorum:
        raise ClusterError("not restarting %s: while it is down the cluster needs %d healthy voting members, only %d others are "
                           "healthy (%s)" % (name, quorum, len(others), describe_unhealthy([m for m in voters if m.id != me.id and not m.healthy])
                                             or "no other members"))
    result = {"changed": True, "member": name, "leader_moved_to": None}
    if check_mode:
        return result
    if view.leader_id == me.id:
        result["leader_moved_to"] = _transfer_leadership(ops, view, me, prefer)
    index = view.max_index
    started = ops.monotonic()
    _systemctl(ops, ["restart", service], name)
    wait_for(ops, timeout, "member %s being healthy again after its restart" % name, lambda: _member_caught_up(ops, me.endpoint, index))
    result["seconds"] = round(ops.monotonic() - started, 2)
    return result


def join(ops, name, peer_urls, client_url, service, endpoints, timeout=120, check_mode=False):
    """Add member ``name`` (this host, configured with ``initial-cluster-state: existing``) as a learner, start it,
    promote it once it has caught up. Resumes a join an earlier run left half done."""
    others = [e for e in endpoints if e != client_url]
    view = look(ops.etcdctl, others)
    me = view.member(name, peer_urls)
    if me is not None and me.name and me.name != name:
        raise ClusterError("the peer URL %s already belongs to member %s; remove that member first" % (", ".join(peer_urls), me.name))
    if me is not None and me.started and not me.is_learner and me.healthy:
        return {"changed": False, "member": name, "steps": []}
    voters = view.voters
    healthy = [m for m in voters if m.healthy]
    if len(healthy) < len(voters) // 2 + 1:
        raise ClusterError("not adding %s: the cluster has no quorum (%s)" % (name, describe_unhealthy([m for m in voters if not m.healthy])))
    steps = []
    if check_mode:
        return {"changed": True, "member": name, "steps": ["member add --learner" if me is None else "resume join"]}
    if me is None:
        def added():
            # etcd refuses membership changes until the leader has been connected to every member for 5 s
            # ("unhealthy cluster"); an add whose answer got lost shows up in the member list
            if look(ops.etcdctl, others).member(name, peer_urls) is None:
                ops.etcdctl.member_add(name, peer_urls, learner=True, endpoints=[m.endpoint for m in healthy])
            return True
        wait_for(ops, timeout, "member add of %s" % name, added)
        steps.append("added as learner")
    _systemctl(ops, ["start", "--no-block", service], name)
    steps.append("started")

    def promoted():
        current = look(ops.etcdctl, others).member(name, peer_urls)
        if current is None:
            raise ClusterError("member %s vanished from the member list" % name)
        if not current.is_learner:
            return True
        ops.etcdctl.member_promote(current.id, endpoints=[m.endpoint for m in healthy])
        return True
    wait_for(ops, timeout, "promotion of learner %s" % name, promoted)
    steps.append("promoted")
    wait_for(ops, timeout, "member %s being healthy" % name, lambda: _member_caught_up(ops, client_url, 0))
    return {"changed": True, "member": name, "steps": steps}


def remove(ops, name, endpoints, timeout=60, check_mode=False):
    """Remove member ``name`` from the cluster (run from any member that stays)."""
    view = look(ops.etcdctl, endpoints)
    member = view.member(name)
    if member is None:
        return {"changed": False, "member": name}
    remaining = [m for m in view.voters if m.id != member.id]
    if not remaining:
        raise ClusterError("not removing %s: it is the last voting member of the cluster" % name)
    healthy = [m for m in remaining if m.healthy]
    quorum = len(remaining) // 2 + 1
    if len(healthy) < quorum:
        raise ClusterError("not removing %s: the %d remaining members need %d healthy ones for quorum, %d are (%s)" % (
            name, len(remaining), quorum, len(healthy), describe_unhealthy([m for m in remaining if not m.healthy])))
    result = {"changed": True, "member": name, "leader_moved_to": None}
    if check_mode:
        return result
    if view.leader_id == member.id and member.endpoint:
        result["leader_moved_to"] = _transfer_leadership(ops, view, member, ())
    ops.etcdctl.member_remove(member.id, endpoints=[m.endpoint for m in healthy])

    def gone():
        after = look(ops.etcdctl, [m.endpoint for m in healthy])
        return after.member(name) is None and after.leader is not None
    wait_for(ops, timeout, "removal of %s" % name, gone)
    return result
