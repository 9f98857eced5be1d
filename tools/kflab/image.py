# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cached base tree of each distro (one debootstrap, shared by every machine through overlayfs)
and the apt sources the machines get: the host's Debian entries with the codename swapped."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from debfetch import DebFetchError, debian_mirror_uri  # tools/debfetch.py, beside this package

from . import paths
from .errors import LabError
from .hostcmd import file_lock, progress, safe_rmtree, write_atomic

DISTROS = ("bookworm", "trixie")
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,kmod,procps"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def parse_apt_sources(deb822_texts: list[str], one_line_text: str) -> list[dict]:
    """Debian archive entries (uri, suites, components) of the host's apt configuration.

    deb822 stanzas count when signed by the Debian archive keyring; one-line entries when their
    URI path is a Debian archive (``/debian`` or ``/debian-security``)."""
    entries = []
    for text in deb822_texts:
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _sep, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            if "debian-archive-keyring" not in fields.get("signed-by", ""):
                continue
            for uri in fields.get("uris", "").split():
                entries.append({"uri": uri, "suites": fields.get("suites", "").split(),
                                "components": fields.get("components", "main").split()})
    for line in one_line_text.splitlines():
        match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$", line.strip())
        if match and re.search(r"/debian(-security)?/?$", match.group(1)):
            entries.append({"uri": match.group(1), "suites": [match.group(2)], "components": match.group(3).split()})
    return entries


def render_apt_sources(entries: list[dict], host_codename: str, distro: str) -> str:
    """A deb822 ``debian.sources`` for ``distro``: the host's Debian entries with the codename swapped."""
    stanzas = []
    seen = set()
    for entry in entries:
        suites = []
        for suite in entry["suites"]:
            if host_codename and (suite == host_codename or suite.startswith(host_codename + "-")):
                suite = distro + suite[len(host_codename):]
            if suite not in suites:
                suites.append(suite)
        key = (entry["uri"], tuple(suites))
        if not suites or key in seen:
            continue
        seen.add(key)
        stanzas.append("Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n"
                       % (entry["uri"], " ".join(suites), " ".join(entry["components"]), DEBIAN_KEYRING))
    if not stanzas:
        raise LabError("the host's apt sources have no Debian archive entry to give the machines; "
                       "add one (a deb822 .sources stanza signed by the Debian archive keyring)")
    return "\n".join(stanzas)


def host_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def host_apt_entries() -> list[dict]:
    texts = [path.read_text(encoding="utf-8") for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    one_line = ""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            one_line += path.read_text(encoding="utf-8") + "\n"
    return parse_apt_sources(texts, one_line)


def ensure_base(lab: str, distro: str) -> Path:
    """The cached base tree of ``distro``; built with debootstrap into a temp dir, renamed when complete."""
    target = paths.base_dir(distro)
    if target.is_dir():
        return target
    with file_lock(paths.lock_path("base-%s" % distro)) as lock:
        if target.is_dir():
            return target
        for stale in paths.CACHE_ROOT.glob(".base-%s.tmp-*" % distro):
            progress(lab, "removing the half-built base %s left by an earlier run" % stale)
            safe_rmtree(stale)
        try:
            mirror = debian_mirror_uri()
        except DebFetchError as exc:
            raise LabError(str(exc)) from exc
        sources = render_apt_sources(host_apt_entries(), host_codename(), distro)
        tmp = Path(tempfile.mkdtemp(dir=str(paths.CACHE_ROOT), prefix=".base-%s.tmp-" % distro))
        started = time.monotonic()
        progress(lab, "building the %s base with debootstrap from %s (once; about a minute) ..." % (distro, mirror))
        log = paths.CACHE_ROOT / ("base-%s.debootstrap.log" % distro)
        try:
            with open(log, "w", encoding="utf-8") as handle:
                proc = subprocess.run(
                    ["debootstrap", "--variant=minbase", "--include=%s" % BASE_PACKAGES, distro, str(tmp), mirror],
                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
                    env=dict(os.environ, LANG="C", LC_ALL="C"),
                    # debootstrap keeps the lock when this process is killed: nobody removes its
                    # directory while it still runs
                    pass_fds=(lock.fileno(),))
            if proc.returncode != 0:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                raise LabError("debootstrap of %s failed (rc=%d, full log %s):\n  %s"
                               % (distro, proc.returncode, log, "\n  ".join(tail)))
            configure_base(tmp, sources)
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(LabError, OSError):
                safe_rmtree(tmp)
            raise
        progress(lab, "base %s ready in %.0f s (%s)" % (distro, time.monotonic() - started, target))
    return target


def configure_base(root: Path, sources: str) -> None:
    """Settings shared by every machine; per-machine identity is written into each overlay."""
    apt = root / "etc/apt"
    with contextlib.suppress(FileNotFoundError):
        (apt / "sources.list").unlink()
    write_atomic(apt / "sources.list.d/debian.sources", sources)
    write_atomic(apt / "apt.conf.d/80kubeforge-lab", 'APT::Install-Recommends "false";\nAcquire::Retries "3";\n')
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # generated per machine
    write_atomic(root / "etc/ssh/sshd_config.d/kubeforge-lab.conf",
                 "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    write_atomic(root / "etc/machine-id", "")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    # units that cannot work in a container and would only mark the machine degraded
    for unit in ("systemd-networkd-wait-online.service",):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/dev/null", link)
