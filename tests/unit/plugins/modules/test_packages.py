# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.packages main() against a scripted package manager that answers exact argv only.

``FakeApt`` keeps what dpkg would know (installed versions, holds) and what the package lists offer; every
command the module runs must be one of the exact argv below, so a changed flag or a shell string fails here.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible.module_utils import basic
from module_harness import ExitJson, FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.module_utils import _packages
from ansible_collections.kubeforge.cluster.plugins.modules import packages

BINS = {"dpkg-query": "/usr/bin/dpkg-query", "dpkg-deb": "/usr/bin/dpkg-deb", "apt-get": "/usr/bin/apt-get", "apt-mark": "/usr/bin/apt-mark",
        "rpm": "/usr/bin/rpm", "dnf": "/usr/bin/dnf", "yum": "/usr/bin/yum"}
QUERY_FORMAT = "-f=${Package}\t${Version}\t${db:Status-Want}\t${db:Status-Status}\n"
LOCK = ["-o", "DPkg::Lock::Timeout=120"]
CONF = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C", "DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}


class FakeApt:
    """dpkg's database and apt's lists; answers the exact commands of the module."""

    def __init__(self, lists_dir, installed=None, held=(), available=None, lists_fresh=True, debs=None):
        self.lists_dir = lists_dir
        self.installed = dict(installed or {})
        self.held = set(held)
        self.available = available or {}  # what the lists offer once updated: name -> [versions], newest last
        self.known = dict(self.available) if lists_fresh else {}
        self.debs = debs or {}  # path -> (name, version)
        self.calls = []
        self.fail_install = None
        self.broken = set()
        self.policy_rc_d = None  # the path the module was pointed at (fixture)
        self.policy_at_install = []  # (content, mode) of policy-rc.d at each apt-get install -y, or None
        if lists_fresh:
            self._write_lists()

    def _write_lists(self):
        os.makedirs(self.lists_dir, exist_ok=True)
        with open(os.path.join(self.lists_dir, "deb.example_dists_bookworm_main_binary-amd64_Packages"), "w") as handle:
            handle.write("Package: x\n")

    def candidate(self, spec):
        if spec.startswith("/"):
            return self.debs[spec]
        name, _sep, version = spec.partition("=")
        versions = self.known.get(name, [])
        if version:
            versions = [v for v in versions if v == version or (version.endswith("*") and v.startswith(version[:-1]))]
        return (name, versions[-1]) if versions else None

    def __call__(self, argv, environ_update=None, **kwargs):
        assert environ_update == ENV
        self.calls.append(argv)
        if argv[:4] == [BINS["dpkg-query"], "-W", QUERY_FORMAT, "--"]:
            names = argv[4:]
            assert names == sorted(names)
            out = "".join("%s\t%s\t%s\tinstalled\n" % (n, self.installed[n], "hold" if n in self.held else "install")
                          for n in names if n in self.installed)
            missing = [n for n in names if n not in self.installed]
            err = "".join("dpkg-query: no packages found matching %s\n" % n for n in missing)
            return (1 if missing else 0), out, err
        if argv[:3] == [BINS["dpkg-deb"], "--show", "--showformat=${Package}\t${Version}\n"]:
            name, version = self.debs[argv[3]]
            return 0, "%s\t%s\n" % (name, version), ""
        if argv == [BINS["apt-get"], "update", "-q"] + LOCK:
            self.known = dict(self.available)
            self._write_lists()
            return 0, "Reading package lists...\n", ""
        simulate = argv[:4] == [BINS["apt-get"], "install", "-s", "-q"]
        if argv[:4] == [BINS["apt-get"], "install", "-y", "-q"] or simulate:
            rest = argv[4:]
            assert rest[:2] == LOCK
            assert rest[2:6] == CONF
            rest = rest[6:]
            assert rest[0] in ("--no-install-recommends", "--install-recommends")
            specs = [s for s in rest[1:] if s != "--allow-downgrades"]
            if any(s.partition("=")[0] in self.broken for s in specs):
                return 100, "", "E: Unable to correct problems, you have held broken packages.\n"
            missing = [s for s in specs if self.candidate(s) is None]
            if missing:
                return 100, "Reading package lists...\n", "E: Unable to locate package %s\n" % missing[0].partition("=")[0]
            changes = [self.candidate(s) for s in specs]
            for name, version in changes:
                if name in self.held and self.installed.get(name) != version:
                    return 100, "", "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
            if simulate:
                return 0, "".join("Inst %s (%s Debian:12/stable [amd64])\n" % c for c in changes), ""
            if self.policy_rc_d:
                self.policy_at_install.append((open(self.policy_rc_d).read(), os.stat(self.policy_rc_d).st_mode & 0o7777)
                                              if os.path.exists(self.policy_rc_d) else None)
            if self.fail_install:
                return self.fail_install
            for name, version in changes:
                self.installed[name] = version
            return 0, "Setting up ...\n", ""
        if argv[:4] == [BINS["apt-get"], "remove", "-y", "-q"]:
            assert argv[4:6] == LOCK
            for name in argv[6:]:
                if name in self.held:
                    return 100, "", "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
            for name in argv[6:]:
                self.installed.pop(name, None)
            return 0, "", ""
        if argv[:2] == [BINS["apt-mark"], "hold"]:
            self.held.update(argv[2:])
            return 0, "".join("%s set on hold.\n" % n for n in argv[2:]), ""
        if argv[:2] == [BINS["apt-mark"], "unhold"]:
            self.held.difference_update(argv[2:])
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)


@pytest.fixture
def apt(tmp_path, monkeypatch):
    monkeypatch.setattr(_packages, "APT_STAMP", str(tmp_path / "periodic" / "update-success-stamp"))
    monkeypatch.setattr(_packages, "APT_LISTS", str(tmp_path / "lists"))
    (tmp_path / "sbin").mkdir()
    monkeypatch.setattr(_packages, "POLICY_RC_D", str(tmp_path / "sbin" / "policy-rc.d"))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: BINS.get(name)
                        if name in ("dpkg-query", "dpkg-deb", "apt-get", "apt-mark") else None)

    def make(**kwargs):
        fake = FakeApt(str(tmp_path / "lists"), **kwargs)
        fake.policy_rc_d = str(tmp_path / "sbin" / "policy-rc.d")
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
        return fake

    return make


def run(args, check_mode=False, diff=False):
    return call_main(packages.main, args, check_mode=check_mode, diff=diff)


def query(*names):
    return [BINS["dpkg-query"], "-W", QUERY_FORMAT, "--"] + sorted(names)


def install(*specs, simulate=False, extra=()):
    return [BINS["apt-get"], "install", "-s" if simulate else "-y", "-q"] + LOCK + CONF + ["--no-install-recommends"] + list(extra) + list(specs)


AVAILABLE = {"containerd": ["1.6.20~ds1-1+b1"], "runc": ["1.1.5+ds1-1+deb12u1"], "tree": ["2.0.0-1", "2.1.0-1"]}


def test_fresh_machine_check_mode_reports_without_touching_anything(apt, tmp_path):
    fake = apt(available=AVAILABLE, lists_fresh=False)
    kind, result = run({"names": ["containerd", "runc"]}, check_mode=True, diff=True)
    assert kind is ExitJson
    assert result["changed"] is True
    assert result["installed"] == ["containerd", "runc"]
    assert result["packages"] == {"containerd": {"version": None, "held": False}, "runc": {"version": None, "held": False}}
    # looked and simulated, never updated the lists or installed
    assert fake.calls == [query("containerd", "runc"), install("containerd", "runc", simulate=True)]
    assert "a real run updates them first" in result["warnings"][0]
    assert "Unable to locate package containerd" in result["warnings"][0]
    assert result["diff"]["before"] == "containerd (not installed)\nrunc (not installed)\n"
    assert fake.installed == {} and not (tmp_path / "periodic").exists()


def test_install_updates_stale_lists_then_second_run_runs_only_dpkg_query(apt, tmp_path):
    fake = apt(available=AVAILABLE, lists_fresh=False)
    kind, result = run({"names": ["containerd", "runc"]}, diff=True)
    assert kind is ExitJson, result
    assert fake.calls == [query("containerd", "runc"), [BINS["apt-get"], "update", "-q"] + LOCK, install("containerd", "runc"),
                          query("containerd", "runc")]
    assert result["changed"] is True and result["cache_updated"] is True
    assert result["packages"]["containerd"] == {"version": "1.6.20~ds1-1+b1", "held": False}
    assert result["diff"]["after"] == "containerd 1.6.20~ds1-1+b1\nrunc 1.1.5+ds1-1+deb12u1\n"
    assert (tmp_path / "periodic" / "update-success-stamp").exists()

    fake.calls.clear()
    kind, result = run({"names": ["containerd", "runc"]}, check_mode=True)
    assert (kind, result["changed"]) == (ExitJson, False)
    kind, result = run({"names": ["containerd", "runc"]})
    assert (kind, result["changed"], result["installed"]) == (ExitJson, False, [])
    assert fake.calls == [query("containerd", "runc")] * 2


def test_fresh_lists_are_used_without_update(apt):
    fake = apt(available=AVAILABLE)
    kind, result = run({"names": ["tree"], "cache_valid_time": 3600}, check_mode=True)
    assert result["packages"]["tree"] == {"version": "2.1.0-1", "held": False}  # what apt-get -s would install
    assert result["warnings"] == []
    kind, result = run({"names": ["tree"]})
    assert result["cache_updated"] is False
    assert [BINS["apt-get"], "update", "-q"] + LOCK not in fake.calls


def test_unknown_package_updates_once_then_fails_naming_it(apt):
    fake = apt(available=AVAILABLE)
    kind, result = run({"names": ["tree", "contaiinerd"]})
    assert kind is FailJson
    assert result["msg"] == "installing tree, contaiinerd with apt failed: E: Unable to locate package contaiinerd"
    assert result["rc"] == 100 and "contaiinerd" in result["stderr"]
    assert result["cmd"] == install("tree", "contaiinerd")
    # the first attempt failed on an unknown name with fresh lists: one update, one retry, nothing installed
    assert fake.calls.count(install("tree", "contaiinerd")) == 2
    assert fake.calls.count([BINS["apt-get"], "update", "-q"] + LOCK) == 1
    assert fake.installed == {}


def test_check_mode_fails_when_apt_could_not_install_even_with_fresh_lists(apt):
    fake = apt(available=AVAILABLE)
    kind, result = run({"names": ["tree=9.9"]}, check_mode=True)
    # an unknown version may appear after apt-get update: a warning, not a failure
    assert kind is ExitJson and "tree" in result["warnings"][0] and "a real run updates them first" in result["warnings"][0]
    fake.broken.add("tree")
    kind, result = run({"names": ["tree"]}, check_mode=True)
    assert kind is FailJson
    assert result["msg"] == "apt would fail to install tree: E: Unable to correct problems, you have held broken packages."
    assert fake.installed == {}


def test_version_pins_exact_and_prefix(apt):
    fake = apt(installed={"tree": "2.0.0-1"}, available=AVAILABLE)
    kind, result = run({"names": ["tree=2.0.0-1"]})
    assert (kind, result["changed"]) == (ExitJson, False)
    kind, result = run({"names": ["tree=2.0*"]})
    assert (kind, result["changed"]) == (ExitJson, False)
    kind, result = run({"names": ["tree=2.1*"]}, diff=True)
    assert (kind, result["changed"], result["installed"]) == (ExitJson, True, ["tree"])
    assert install("tree=2.1*") in fake.calls
    assert fake.installed["tree"] == "2.1.0-1"
    assert result["diff"]["before"] == "tree 2.0.0-1\n" and result["diff"]["after"] == "tree 2.1.0-1\n"


def test_downgrade_needs_allow_downgrade(apt):
    fake = apt(installed={"tree": "2.1.0-1"}, available=AVAILABLE)
    fake.fail_install = (100, "", "E: Packages were downgraded and -y was used without --allow-downgrades.\n")
    kind, result = run({"names": ["tree=2.0.0-1"]})
    assert kind is FailJson
    assert result["msg"].endswith("; set allow_downgrade=true to install an older version")
    fake.fail_install = None
    kind, result = run({"names": ["tree=2.0.0-1"], "allow_downgrade": True})
    assert install("tree=2.0.0-1", extra=["--allow-downgrades"]) in fake.calls
    assert fake.installed["tree"] == "2.0.0-1"


def test_hold_is_reported_and_fixed_idempotently(apt):
    fake = apt(installed={"containerd": "1.6.20~ds1-1+b1", "runc": "1.1.5+ds1-1+deb12u1"}, held={"runc"}, available=AVAILABLE)
    kind, result = run({"names": ["containerd", "runc"], "hold": True}, check_mode=True, diff=True)
    assert (result["changed"], result["held"], result["installed"]) == (True, ["containerd"], [])
    assert "containerd 1.6.20~ds1-1+b1\n" in result["diff"]["before"] and "containerd 1.6.20~ds1-1+b1 (held)\n" in result["diff"]["after"]
    assert fake.held == {"runc"}
    kind, result = run({"names": ["containerd", "runc"], "hold": True})
    assert [BINS["apt-mark"], "hold", "containerd"] in fake.calls and fake.held == {"containerd", "runc"}
    kind, result = run({"names": ["containerd", "runc"], "hold": True})
    assert result["changed"] is False
    kind, result = run({"names": ["containerd", "runc"]})  # hold unset: holds are left alone
    assert result["changed"] is False and fake.held == {"containerd", "runc"}
    kind, result = run({"names": ["runc"], "hold": False})
    assert result["unheld"] == ["runc"] and fake.held == {"containerd"}


def test_held_package_gets_its_new_pin_and_stays_held(apt):
    fake = apt(installed={"tree": "2.0.0-1"}, held={"tree"}, available=AVAILABLE)
    kind, result = run({"names": ["tree=2.1.0-1"], "hold": True})
    assert kind is ExitJson, result
    start = fake.calls.index([BINS["apt-mark"], "unhold", "tree"])
    assert fake.calls[start:start + 3] == [[BINS["apt-mark"], "unhold", "tree"], install("tree=2.1.0-1"), [BINS["apt-mark"], "hold", "tree"]]
    assert fake.installed["tree"] == "2.1.0-1" and fake.held == {"tree"}
    assert result["held"] == [] and result["packages"]["tree"] == {"version": "2.1.0-1", "held": True}


def test_absent_releases_the_hold_and_removes(apt):
    fake = apt(installed={"docker.io": "20.10.24+dfsg1-1+b3", "runc": "1.1.5"}, held={"docker.io"}, available=AVAILABLE)
    kind, result = run({"names": ["docker.io", "docker-ce"], "state": "absent"}, check_mode=True)
    assert (result["changed"], result["removed"]) == (True, ["docker.io"]) and "docker.io" in fake.installed
    kind, result = run({"names": ["docker.io", "docker-ce"], "state": "absent"})
    assert fake.calls[-3:] == [[BINS["apt-mark"], "unhold", "docker.io"], [BINS["apt-get"], "remove", "-y", "-q"] + LOCK + ["docker.io"],
                               query("docker.io")]
    assert result["packages"] == {"docker.io": None, "docker-ce": None}
    kind, result = run({"names": ["docker.io", "docker-ce"], "state": "absent"})
    assert result["changed"] is False


def test_package_files_install_only_when_that_version_is_missing(apt, tmp_path):
    deb = tmp_path / "cri-tools_1.36.0_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    fake = apt(installed={"cri-tools": "1.35.0"}, available=AVAILABLE, debs={str(deb): ("cri-tools", "1.36.0")})
    kind, result = run({"debs": [str(deb)]})
    assert kind is ExitJson, result
    assert install(str(deb)) in fake.calls and result["installed"] == ["cri-tools"]
    fake.calls.clear()
    kind, result = run({"debs": [str(deb)]})
    assert result["changed"] is False
    assert fake.calls == [[BINS["dpkg-deb"], "--show", "--showformat=${Package}\t${Version}\n", str(deb)], query("cri-tools")]
    kind, result = run({"debs": [str(tmp_path / "missing_1.0_amd64.deb")]}, check_mode=True)
    assert (kind, result["msg"]) == (FailJson, "%s: no such file on the node" % (tmp_path / "missing_1.0_amd64.deb"))


def policy_answer(path, *args):
    """What invoke-rc.d would learn from policy-rc.d: its exit status for ``args``."""
    return subprocess.run([path, *args], check=False).returncode


def test_start_services_false_installs_under_a_policy_rc_d_that_refuses_starts(apt, tmp_path):
    fake = apt(available=AVAILABLE)
    policy = tmp_path / "sbin" / "policy-rc.d"
    kind, result = run({"names": ["tree"]})
    assert (kind, fake.policy_at_install) == (ExitJson, [None])  # the default starts services as the package says
    kind, result = run({"names": ["containerd"], "start_services": False})
    assert kind is ExitJson and result["installed"] == ["containerd"], result
    [(content, mode)] = fake.policy_at_install[1:]
    assert mode == 0o755 and content.startswith("#!/bin/sh\n")
    policy.write_text(content)
    policy.chmod(mode)
    assert policy_answer(str(policy), "containerd", "start") == 101  # the answer that makes invoke-rc.d start nothing
    policy.unlink()
    # nothing to install, check mode: policy-rc.d is never written
    run({"names": ["containerd"], "start_services": False})
    run({"names": ["runc"], "start_services": False}, check_mode=True)
    assert len(fake.policy_at_install) == 2 and sorted(os.listdir(tmp_path / "sbin")) == []


def test_start_services_false_puts_the_operators_policy_rc_d_back(apt, tmp_path):
    fake = apt(available=AVAILABLE)
    policy = tmp_path / "sbin" / "policy-rc.d"
    operator = "#!/bin/sh\n# the operator's: no restarts of ssh\n[ \"$1\" = ssh ] && exit 101\nexit 0\n"
    policy.write_text(operator)
    policy.chmod(0o700)
    kind, result = run({"names": ["tree"], "start_services": False})
    assert kind is ExitJson, result
    assert fake.policy_at_install[0][0] != operator and "exit 101" in fake.policy_at_install[0][0]
    assert (policy.read_text(), policy.stat().st_mode & 0o7777) == (operator, 0o700)
    assert sorted(os.listdir(tmp_path / "sbin")) == ["policy-rc.d"]
    # a failed install puts it back as well
    fake.fail_install = (100, "", "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    kind, result = run({"names": ["runc"], "start_services": False})
    assert kind is FailJson and "dpkg returned an error code" in result["msg"]
    assert policy.read_text() == operator and sorted(os.listdir(tmp_path / "sbin")) == ["policy-rc.d"]


def test_start_services_false_repairs_what_a_killed_run_left(apt, tmp_path):
    fake = apt(available=AVAILABLE)
    policy = tmp_path / "sbin" / "policy-rc.d"
    policy.write_text(_packages.POLICY_RC_D_DENY)  # ours, with the operator's file still moved aside
    (tmp_path / "sbin" / "policy-rc.d.kubeforge-saved").write_text("#!/bin/sh\nexit 0\n")
    kind, result = run({"names": ["tree"], "start_services": False})
    assert kind is ExitJson, result
    assert policy.read_text() == "#!/bin/sh\nexit 0\n" and sorted(os.listdir(tmp_path / "sbin")) == ["policy-rc.d"]
    policy.write_text(_packages.POLICY_RC_D_DENY)  # ours alone: the host had none
    kind, result = run({"names": ["runc"], "start_services": False})
    assert kind is ExitJson and sorted(os.listdir(tmp_path / "sbin")) == []
    assert fake.policy_at_install[-1][0] == _packages.POLICY_RC_D_DENY


def test_success_that_did_not_install_is_an_error(apt):
    fake = apt(available=AVAILABLE)
    fake.fail_install = (0, "nothing done\n", "")
    kind, result = run({"names": ["tree"]})
    assert (kind, result["msg"]) == (FailJson, "apt reported success, but tree is not installed (wanted tree)")


@pytest.mark.parametrize("names, message", [
    (["-oAPT::Get::AllowUnauthenticated=1"], "names[0]: package name '-oAPT::Get::AllowUnauthenticated' must not start with '-'"),
    (["tree --reinstall"], "names[0]: package name 'tree --reinstall' must not contain whitespace"),
    (["tree=-1"], "names[0]: 'tree=-1': the version '-1' is not a package version"),
    (["tree", "tree=2.0"], "names[1]: 'tree=2.0': the package tree is already listed as 'tree'"),
    (["../etc"], "names[0]: package name '../etc' must not contain '/'"),
    ([["tree"]], "names[0]: must be a string, got a list"),
])
def test_names_that_could_become_options_are_refused(apt, names, message):
    fake = apt(available=AVAILABLE)
    kind, result = run({"names": names})
    assert kind is FailJson
    assert result["msg"].startswith(message)
    assert fake.calls == []


def test_absent_refuses_pins_and_files(apt):
    apt(available=AVAILABLE)
    kind, result = run({"names": ["tree=2.0"], "state": "absent"})
    assert result["msg"] == "names[0]: 'tree=2.0': a version pin is only allowed with state=present; give the plain name 'tree'"
    kind, result = run({"debs": ["relative.deb"]})
    assert result["msg"] == "debs[0]: must be an absolute path (starting with /), got 'relative.deb'"
    kind, result = run({"names": []})
    assert result["msg"] == "names or debs must list at least one package"


class FakeDnf:
    def __init__(self, installed=None, locks=None, available=None, versionlock=True, stale=False):
        self.installed = dict(installed or {})
        self.locks = set(locks or ())
        self.available = available or {}
        self.versionlock = versionlock
        self.stale = stale
        self.calls = []

    def __call__(self, argv, environ_update=None, **kwargs):
        self.calls.append(argv)
        if argv[:5] == [BINS["rpm"], "-q", "--queryformat", "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n", "--"]:
            out = ""
            rc = 0
            for name in argv[5:]:
                if name in self.installed:
                    out += "%s\t%s\n" % (name, self.installed[name])
                else:
                    out += "package %s is not installed\n" % name
                    rc += 1
            return rc, out, ""
        if argv == [BINS["dnf"], "-q", "versionlock", "list"]:
            if not self.versionlock:
                return 2, "", "No such command: versionlock.\n"
            return 0, "".join("%s-%s.*\n" % (n, self.installed.get(n, "0:1-1")) for n in sorted(self.locks)), ""
        if argv[:4] == [BINS["dnf"], "install", "-y", "--setopt=install_weak_deps=False"]:
            rest = argv[4:]
            refresh = rest[:1] == ["--refresh"]
            if refresh:
                rest = rest[1:]
                self.stale = False
            if self.stale:
                return 1, "", "No match for argument: %s\nError: Unable to find a match: %s\n" % (rest[0], rest[0])
            for spec in rest:
                for name, version in self.available.items():
                    if spec in (name, "%s-%s" % (name, version.split(":")[1].rsplit("-", 1)[0])):
                        self.installed[name] = version
            return 0, "Complete!\n", ""
        if argv[:3] == [BINS["dnf"], "versionlock", "add"]:
            self.locks.update(argv[3:])
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)


@pytest.fixture
def dnf(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: BINS.get(name)
                        if name in ("rpm", "dnf") else None)

    def make(**kwargs):
        fake = FakeDnf(**kwargs)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
        return fake

    return make


def test_dnf_pins_refresh_and_versionlock(dnf):
    fake = dnf(available={"containerd": "0:1.6.20-1.el9"}, stale=True)
    kind, result = run({"names": ["containerd=1.6.20"], "hold": True})
    assert kind is ExitJson, result
    assert [BINS["dnf"], "install", "-y", "--setopt=install_weak_deps=False", "containerd-1.6.20"] in fake.calls
    assert [BINS["dnf"], "install", "-y", "--setopt=install_weak_deps=False", "--refresh", "containerd-1.6.20"] in fake.calls
    assert fake.calls[-1] == [BINS["dnf"], "versionlock", "add", "containerd"]
    assert result["packages"] == {"containerd": {"version": "0:1.6.20-1.el9", "held": True}}
    fake.calls.clear()
    kind, result = run({"names": ["containerd=1.6.20"], "hold": True})
    assert result["changed"] is False
    assert fake.calls == [[BINS["rpm"], "-q", "--queryformat", "%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n", "--", "containerd"],
                          [BINS["dnf"], "-q", "versionlock", "list"]]


def test_dnf_without_versionlock_warns_that_hold_is_ignored(dnf):
    fake = dnf(installed={"tree": "0:1.8.0-10.el9"}, versionlock=False)
    kind, result = run({"names": ["tree"], "hold": True})
    assert (kind, result["changed"]) == (ExitJson, False)
    assert result["warnings"] == ["hold=True is ignored: dnf versionlock is not available (install python3-dnf-plugin-versionlock)"]
    assert len(fake.calls) == 2


def test_no_package_manager(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None)
    kind, result = run({"names": ["tree"]})
    assert kind is FailJson and result["msg"].startswith("no supported package manager on this node")
