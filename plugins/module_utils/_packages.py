# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Distribution packages for ``kubeforge.cluster.packages`` (and the ``.deb``/``.rpm`` artifacts of
``release_artifact``): inspect with ``dpkg-query``/``rpm -q``, act with ``apt-get``/``apt-mark`` or
``dnf``/``yum``. Stdlib only; nothing needs python3-apt or the dnf bindings, so check mode is truthful on a
fresh machine.

Commands run through an injected ``run(argv) -> (rc, stdout, stderr)`` (the module passes
``AnsibleModule.run_command`` with a C locale and ``DEBIAN_FRONTEND=noninteractive``), so the whole behaviour
is unit-tested with exact argv and no host.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import tempfile
import time

from ansible_collections.kubeforge.cluster.plugins.module_utils._files import directory_lock
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    require_list,
    require_str,
    safe_name,
)

# Debian and RPM package names (RPM also allows '_'); versions as both write them, with an optional '*' glob at the end.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~:_-]*\*?$")
# dpkg states in which a package's files are installed and configured (triggers may still be pending).
INSTALLED_STATES = ("installed", "triggers-pending", "triggers-awaited")
ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C", "DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}
# apt-get update's own success stamp (written by us after an update, read by apt's periodic jobs and the apt module).
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"
APT_LISTS = "/var/lib/apt/lists"
# invoke-rc.d and deb-systemd-invoke ask this program before they start, restart or reload a service; exit 101 = no.
POLICY_RC_D = "/usr/sbin/policy-rc.d"
POLICY_RC_D_DENY = ("#!/bin/sh\n# Written by kubeforge.cluster.packages (start_services: false) for one apt-get install, "
                    "then removed.\nexit 101\n")
SAVED_SUFFIX = ".kubeforge-saved"


class PackagesError(Exception):
    """A failure with the message for the user and the command's rc/stdout/stderr when one failed."""

    def __init__(self, msg, rc=None, stdout=None, stderr=None, cmd=None):
        super().__init__(msg)
        self.msg = msg
        self.extra = {key: value for key, value in (("rc", rc), ("stdout", stdout), ("stderr", stderr), ("cmd", cmd)) if value is not None}


class Request:
    """One entry of ``names``: ``name``, ``name=version`` or ``name=version*``."""

    def __init__(self, name, version=None):
        self.name = name
        self.version = version

    @property
    def spec(self):
        return self.name if self.version is None else "%s=%s" % (self.name, self.version)

    def satisfied_by(self, installed, rpm=False):
        """True when the installed version (None: not installed) is what this request asks for."""
        if installed is None:
            return False
        if self.version is None:
            return True
        candidates = [installed]
        if rpm:  # "1.6.20" matches 1.6.20-1.el9, "0:1.6.20-1.el9" and "1.6.20-1.el9" match 0:1.6.20-1.el9
            evr = installed.split(":", 1)[1] if ":" in installed else installed
            candidates += [evr, evr.rsplit("-", 1)[0]]
        if self.version.endswith("*"):
            return any(fnmatch.fnmatchcase(c, self.version) for c in candidates)
        return self.version in candidates

    def __repr__(self):
        return "Request(%r)" % self.spec


def parse_names(option, values, allow_versions=True):
    """``names`` -> [Request]; each name can never become a command option or a path."""
    requests = []
    seen = {}
    for index, value in enumerate(require_list(option, values)):
        item = "%s[%d]" % (option, index)
        require_str(item, value)
        name, sep, version = value.partition("=")
        safe_name(item, name, what="package name", pattern=NAME_RE)
        if sep:
            if not allow_versions:
                raise InputError(item, "%r: a version pin is only allowed with state=present; give the plain name %r" % (value, name))
            if not VERSION_RE.match(version) or version.count("*") > 1:
                raise InputError(item, "%r: the version %r is not a package version (digits, letters and .+~:_-, "
                                       "optionally ending in *)" % (value, version))
        if name in seen:
            raise InputError(item, "%r: the package %s is already listed as %r" % (value, name, seen[name]))
        seen[name] = value
        requests.append(Request(name, version if sep else None))
    return requests


def parse_files(option, values):
    """``debs`` -> absolute paths of .deb or .rpm files."""
    paths = []
    for index, value in enumerate(require_list(option, values)):
        item = "%s[%d]" % (option, index)
        path = absolute_path(item, value)
        if not path.endswith((".deb", ".rpm")):
            raise InputError(item, "%r must name a .deb or .rpm file" % value)
        paths.append(path)
    return paths


def first_error_line(text):
    """The first ``E:``/``Error:`` line of apt's or dnf's output, the part that names the package."""
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith(("E:", "Error:", "No match for argument", "error:")):
            return stripped
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@contextlib.contextmanager
def services_not_started(path=None):
    """For the body, ``path`` (policy-rc.d) is a script that exits 101, so maintainer scripts start, restart or reload
    no service. An operator's own policy-rc.d is moved aside and put back afterwards; one this function left behind
    (the process was killed) is cleaned up first."""
    path = path or POLICY_RC_D
    saved = path + SAVED_SUFFIX
    directory = os.path.dirname(path)
    os.makedirs(directory, 0o755, exist_ok=True)
    with directory_lock(directory):
        if _is_ours(path):
            if os.path.lexists(saved):
                os.replace(saved, path)
            else:
                os.unlink(path)
        operator_file = os.path.lexists(path)
        if operator_file:
            os.replace(path, saved)
        staged = None
        try:
            fd, staged = tempfile.mkstemp(dir=directory, prefix=".policy-rc.d.kubeforge-")
            with os.fdopen(fd, "w") as handle:
                handle.write(POLICY_RC_D_DENY)
            os.chmod(staged, 0o755)
            os.replace(staged, path)
            staged = None
            yield
        finally:
            if staged is not None:
                os.unlink(staged)
            if operator_file:
                os.replace(saved, path)
            elif _is_ours(path):
                os.unlink(path)


def _is_ours(path):
    try:
        with open(path) as handle:
            return handle.read() == POLICY_RC_D_DENY
    except (OSError, UnicodeDecodeError):
        return False


class Apt:
    """apt-get/apt-mark to act, dpkg-query/dpkg-deb to look."""

    rpm = False
    name = "apt"
    holds_are_free = True

    def __init__(self, run, bins, lock_timeout=120, now=time.time, stamp=None, lists=None):
        self.run = run
        self.bins = bins  # {"dpkg-query": path, "dpkg-deb": ..., "apt-get": ..., "apt-mark": ...}
        self.lock = ["-o", "DPkg::Lock::Timeout=%d" % lock_timeout]
        self.now = now
        self.stamp = stamp or APT_STAMP
        self.lists = lists or APT_LISTS

    def query(self, names):
        """{name: {"version": str, "held": bool}} for the installed ones among ``names``."""
        if not names:
            return {}
        argv = [self.bins["dpkg-query"], "-W", "-f=${Package}\t${Version}\t${db:Status-Want}\t${db:Status-Status}\n", "--"] + sorted(names)
        rc, out, err = self.run(argv)
        if rc not in (0, 1):  # 1: some name is unknown to dpkg
            raise PackagesError("dpkg-query failed: %s" % first_error_line(err), rc, out, err, argv)
        found = {}
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 4 and fields[0] in names and fields[3] in INSTALLED_STATES:
                found[fields[0]] = {"version": fields[1], "held": fields[2] == "hold"}
        return found

    def held(self, names, installed):
        return {name for name in names if installed.get(name, {}).get("held")}

    def inspect_file(self, path):
        argv = [self.bins["dpkg-deb"], "--show", "--showformat=${Package}\t${Version}\n", path]
        rc, out, err = self.run(argv)
        fields = out.strip().split("\t")
        if rc != 0 or len(fields) != 2:
            raise PackagesError("%s is not a readable Debian package: %s" % (path, first_error_line(err) or out.strip()), rc, out, err, argv)
        return fields[0], fields[1]

    def cache_age(self):
        """Seconds since the package lists were last updated; None when there are none."""
        newest = None
        for path in (self.stamp, self.lists):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
        if newest is None or not self._has_lists():
            return None
        return max(0.0, self.now() - newest)

    def _has_lists(self):
        try:
            return any(name.endswith(("_Packages", "_Packages.lz4", "_Packages.gz", "_Packages.xz")) for name in os.listdir(self.lists))
        except OSError:
            return False

    def update(self):
        argv = [self.bins["apt-get"], "update", "-q"] + self.lock
        rc, out, err = self.run(argv)
        if rc != 0 or re.search(r"^E:", err or "", re.M):
            raise PackagesError("apt-get update failed: %s" % first_error_line(err), rc, out, err, argv)
        try:
            os.makedirs(os.path.dirname(self.stamp), exist_ok=True)
            with open(self.stamp, "a"):
                pass
            os.utime(self.stamp, None)
        except OSError:
            pass  # the lists directory's own mtime still tells the age

    def _install_argv(self, specs, recommends, allow_downgrade, simulate=False):
        argv = [self.bins["apt-get"], "install", "-s" if simulate else "-y", "-q"] + self.lock
        argv += ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
        argv.append("--install-recommends" if recommends else "--no-install-recommends")
        if allow_downgrade:
            argv.append("--allow-downgrades")
        return argv + list(specs)

    def install(self, specs, recommends, allow_downgrade):
        argv = self._install_argv(specs, recommends, allow_downgrade)
        return argv, self.run(argv)

    def simulate(self, specs, recommends, allow_downgrade):
        """(ok, {name: version that would be installed}, error line) from ``apt-get install -s``."""
        argv = self._install_argv(specs, recommends, allow_downgrade, simulate=True)
        rc, out, err = self.run(argv)
        versions = {}
        for match in re.finditer(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", out or "", re.M):
            versions[match.group(1).split(":")[0]] = match.group(2)
        return rc == 0, versions, first_error_line(err)

    @staticmethod
    def unknown_package(text):
        return bool(re.search(r"Unable to locate package|has no installation candidate|Version '[^']*' for '[^']*' was not found"
                              r"|Package '[^']*' has no installation candidate", text or ""))

    def remove(self, names):
        argv = [self.bins["apt-get"], "remove", "-y", "-q"] + self.lock + sorted(names)
        return argv, self.run(argv)

    def set_hold(self, names, hold):
        argv = [self.bins["apt-mark"], "hold" if hold else "unhold"] + sorted(names)
        return argv, self.run(argv)

    def hold_available(self):
        return True


class Dnf:
    """dnf (or yum) to act, rpm to look; holds through the versionlock plugin when it is installed."""

    rpm = True
    holds_are_free = False

    def __init__(self, run, bins, tool="dnf"):
        self.run = run
        self.bins = bins  # {"rpm": path, tool: path}
        self.tool = tool
        self.name = tool
        self._locks = None

    def query(self, names):
        if not names:
            return {}
        argv = [self.bins["rpm"], "-q", "--queryformat", "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n", "--"] + sorted(names)
        rc, out, err = self.run(argv)
        found = {}
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 2 and fields[0] in names:
                version = fields[1][len("(none):"):] if fields[1].startswith("(none):") else fields[1]
                found[fields[0]] = {"version": version, "held": False}
        if rc != 0 and not found and "is not installed" not in out:
            raise PackagesError("rpm -q failed: %s" % first_error_line(err or out), rc, out, err, argv)
        return found

    def _versionlock(self):
        """Names locked by versionlock; None when the plugin is not available."""
        if self._locks is None:
            argv = [self.bins[self.tool], "-q", "versionlock", "list"]
            rc, out, err = self.run(argv)
            if rc != 0:
                self._locks = False
            else:
                locks = set()
                for line in out.splitlines():
                    line = line.strip()
                    match = re.match(r"^Package name:\s*(\S+)", line)  # dnf5
                    if match:
                        locks.add(match.group(1))
                        continue
                    match = re.match(r"^!?([A-Za-z0-9][A-Za-z0-9+._-]*?)-(?:\d+:)?[^-\s]+-[^-\s]+$", line)  # dnf4/yum: name-E:V-R.*
                    if match:
                        locks.add(match.group(1))
                self._locks = locks
        return None if self._locks is False else self._locks

    def held(self, names, installed):
        locks = self._versionlock() or set()
        return {name for name in names if name in locks}

    def hold_available(self):
        return self._versionlock() is not None

    def inspect_file(self, path):
        argv = [self.bins["rpm"], "-q", "-p", "--queryformat", "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n", path]
        rc, out, err = self.run(argv)
        fields = out.strip().split("\t")
        if rc != 0 or len(fields) != 2:
            raise PackagesError("%s is not a readable RPM package: %s" % (path, first_error_line(err) or out.strip()), rc, out, err, argv)
        version = fields[1][len("(none):"):] if fields[1].startswith("(none):") else fields[1]
        return fields[0], version

    def cache_age(self):
        return 0.0  # dnf refreshes its metadata itself (metadata_expire)

    def update(self):
        pass

    def _spec(self, spec):
        name, sep, version = spec.partition("=")
        return "%s-%s" % (name, version) if sep and not spec.startswith("/") else spec

    def install(self, specs, recommends, allow_downgrade, refresh=False):
        argv = [self.bins[self.tool], "install", "-y"]
        if self.tool == "dnf":
            argv.append("--setopt=install_weak_deps=%s" % ("True" if recommends else "False"))
        if refresh:
            argv.append("--refresh")
        argv += [self._spec(spec) for spec in specs]
        return argv, self.run(argv)

    def simulate(self, specs, recommends, allow_downgrade):
        return True, {}, ""

    @staticmethod
    def unknown_package(text):
        return bool(re.search(r"No match for argument|Unable to find a match|No package \S+ available", text or ""))

    def remove(self, names):
        argv = [self.bins[self.tool], "remove", "-y"] + sorted(names)
        return argv, self.run(argv)

    def set_hold(self, names, hold):
        argv = [self.bins[self.tool], "versionlock", "add" if hold else "delete"] + sorted(names)
        return argv, self.run(argv)


SBIN = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]


def manager_for(module, lock_timeout=120):
    """Apt when dpkg-query and apt-get are on the node, else dnf or yum with rpm; commands run through
    ``module.run_command`` with ``ENV``."""

    def run(argv):
        return module.run_command(argv, environ_update=ENV)

    def find(name):
        return module.get_bin_path(name, opt_dirs=SBIN)

    apt_bins = {name: find(name) for name in ("dpkg-query", "apt-get")}
    if all(apt_bins.values()):
        apt_bins.update({name: find(name) for name in ("dpkg-deb", "apt-mark")})
        return Apt(run, apt_bins, lock_timeout=lock_timeout)
    rpm = find("rpm")
    for tool in ("dnf", "yum"):
        path = find(tool)
        if rpm and path:
            return Dnf(run, {"rpm": rpm, tool: path}, tool=tool)
    raise PackagesError("no supported package manager on this node: neither dpkg-query + apt-get nor rpm + dnf/yum were found in PATH")


class Outcome:
    def __init__(self):
        self.changed = False
        self.installed = []
        self.removed = []
        self.held = []
        self.unheld = []
        self.cache_updated = False
        self.packages = {}
        self.warnings = []
        self.before = {}
        self.after = {}

    def as_dict(self):
        return dict(changed=self.changed, installed=self.installed, removed=self.removed, held=self.held, unheld=self.unheld,
                    cache_updated=self.cache_updated, packages=self.packages)

    def diff(self):
        def render(state):
            lines = []
            for name in sorted(state):
                entry = state[name]
                if entry is None:
                    lines.append("%s (not installed)\n" % name)
                else:
                    lines.append("%s %s%s\n" % (name, entry["version"] or "(version decided by the package manager)", " (held)" if entry["held"] else ""))
            return "".join(lines)
        return {"before_header": "packages", "after_header": "packages", "before": render(self.before), "after": render(self.after)}


def _fail(message, argv, result):
    rc, out, err = result
    raise PackagesError(message, rc, out, err, argv)


def ensure(manager, requests, files=(), state="present", hold=None, cache_valid_time=3600, recommends=False,
           allow_downgrade=False, check_mode=False, start_services=True):
    """Make the packages of ``requests`` (and the package ``files``) present or absent, with holds; one pass."""
    outcome = Outcome()
    file_packages = []  # (path, name, version)
    for path in files:
        if not os.path.isfile(path):
            raise PackagesError("%s: no such file on the node" % path)
        name, version = manager.inspect_file(path)
        file_packages.append((path, name, version))
    names = {r.name for r in requests} | {name for _p, name, _v in file_packages}
    installed = manager.query(names)
    specs = []
    if state == "present":
        for request in requests:
            if not request.satisfied_by(installed.get(request.name, {}).get("version"), rpm=manager.rpm):
                specs.append(request.spec)
        for path, name, version in file_packages:
            if installed.get(name, {}).get("version") != version:
                specs.append(path)
    # apt's holds come with dpkg-query; dnf's versionlock list is one more command, run only when holds matter
    needs_holds = manager.holds_are_free or hold is not None or state == "absent" or specs
    held = manager.held(names, installed) if needs_holds else set()
    for name in names:
        if name in installed:
            installed[name]["held"] = name in held
    outcome.before = {name: (dict(installed[name]) if name in installed else None) for name in names}
    after = {name: (dict(installed[name]) if name in installed else None) for name in names}

    if state == "absent":
        to_remove = sorted(name for name in names if name in installed)
        if to_remove:
            outcome.changed = True
            outcome.removed = to_remove
            if not check_mode:
                locked = sorted(held & set(to_remove))
                if locked:
                    argv, result = manager.set_hold(locked, False)
                    if result[0] != 0:
                        _fail("releasing the hold on %s before removing failed: %s" % (", ".join(locked), first_error_line(result[2])), argv, result)
                argv, result = manager.remove(to_remove)
                if result[0] != 0:
                    _fail("removing %s failed: %s" % (", ".join(to_remove), first_error_line(result[2] or result[1])), argv, result)
                remaining = sorted(manager.query(set(to_remove)))
                if remaining:
                    _fail("%s still installed after %s remove" % (", ".join(remaining), manager.name), argv, result)
            for name in to_remove:
                after[name] = None
        outcome.after = after
        outcome.packages = after
        return outcome

    spec_names = sorted({_spec_name(spec, file_packages) for spec in specs})

    if specs:
        outcome.changed = True
        outcome.installed = spec_names
        if check_mode:
            age = manager.cache_age()
            stale = age is None or age > cache_valid_time
            ok, versions, error = manager.simulate(specs, recommends, allow_downgrade)
            if not ok:
                if stale or manager.unknown_package(error):
                    outcome.warnings.append("%s cannot resolve %s with the current package lists (%s); a real run updates them first"
                                            % (manager.name, ", ".join(spec_names), error))
                else:
                    raise PackagesError("%s would fail to install %s: %s" % (manager.name, ", ".join(spec_names), error))
            for spec in specs:
                name = _spec_name(spec, file_packages)
                version = versions.get(name) or _pinned_version(spec, file_packages)
                after[name] = {"version": version, "held": bool(after.get(name) and after[name]["held"])}
        else:
            _install(manager, specs, spec_names, held, cache_valid_time, recommends, allow_downgrade, outcome, start_services)
            now = manager.query(names)
            for request in requests:
                if not request.satisfied_by(now.get(request.name, {}).get("version"), rpm=manager.rpm):
                    got = now.get(request.name, {}).get("version")
                    raise PackagesError("%s reported success, but %s is %s (wanted %s)" % (
                        manager.name, request.name, "at version %s" % got if got else "not installed", request.spec))
            for path, name, version in file_packages:
                if now.get(name, {}).get("version") != version:
                    raise PackagesError("%s reported success, but %s is %s (wanted %s from %s)" % (
                        manager.name, name, now.get(name, {}).get("version") or "not installed", version, path))
            for name in names:
                after[name] = {"version": now[name]["version"], "held": name in held}

    if hold is not None:
        if not manager.hold_available():
            outcome.warnings.append("hold=%s is ignored: %s versionlock is not available (install python3-dnf-plugin-versionlock)"
                                    % (hold, manager.name))
        else:
            change = sorted(name for name in names if (name in held) != hold)
            if change:
                outcome.changed = True
                if hold:
                    outcome.held = change
                else:
                    outcome.unheld = change
                if not check_mode:
                    argv, result = manager.set_hold(change, hold)
                    if result[0] != 0:
                        _fail("%s %s failed: %s" % ("holding" if hold else "releasing the hold on", ", ".join(change),
                                                    first_error_line(result[2] or result[1])), argv, result)
                for name in change:
                    if after.get(name) is not None:
                        after[name]["held"] = hold
    outcome.after = after
    outcome.packages = after
    return outcome


def _spec_name(spec, file_packages):
    for path, name, _version in file_packages:
        if spec == path:
            return name
    return spec.partition("=")[0]


def _pinned_version(spec, file_packages):
    for path, _name, version in file_packages:
        if spec == path:
            return version
    version = spec.partition("=")[2]
    return version if version and not version.endswith("*") else None


def _install(manager, specs, spec_names, held, cache_valid_time, recommends, allow_downgrade, outcome, start_services=True):
    """Install ``specs``: refresh stale lists first, once more when a package is unknown; holds on the packages
    whose version must change are released for the transaction and put back afterwards. ``start_services=False``
    (apt) runs the transaction under a policy-rc.d that refuses every service start; rpm scriptlets start nothing."""
    age = manager.cache_age()
    if age is None or age > cache_valid_time:
        manager.update()
        outcome.cache_updated = isinstance(manager, Apt)
    relock = sorted(held & set(spec_names))
    if relock:
        argv, result = manager.set_hold(relock, False)
        if result[0] != 0:
            _fail("releasing the hold on %s for the new version failed: %s" % (", ".join(relock), first_error_line(result[2])), argv, result)
    quiet = services_not_started() if not start_services and isinstance(manager, Apt) else contextlib.nullcontext()
    try:
        with quiet:
            argv, result = manager.install(specs, recommends, allow_downgrade)
            if result[0] != 0 and manager.unknown_package(result[2] or result[1]):
                if isinstance(manager, Apt) and not outcome.cache_updated:
                    manager.update()
                    outcome.cache_updated = True
                    argv, result = manager.install(specs, recommends, allow_downgrade)
                elif isinstance(manager, Dnf):
                    argv, result = manager.install(specs, recommends, allow_downgrade, refresh=True)
        if result[0] != 0:
            error = first_error_line(result[2] or result[1])
            hint = ""
            if "downgrade" in (result[2] or "").lower() and not allow_downgrade:
                hint = "; set allow_downgrade=true to install an older version"
            _fail("installing %s with %s failed: %s%s" % (", ".join(specs), manager.name, error, hint), argv, result)
    finally:
        if relock:
            manager.set_hold(relock, True)
