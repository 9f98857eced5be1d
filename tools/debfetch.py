# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fetch and unpack Debian packages of any suite (bookworm, trixie, sid) into a cache.

Used by the real-binary tests and the lab: containerd 1.6 (bookworm), 1.7 (trixie) and
2.1 (sid) binaries all run on a bookworm host once unpacked with ``dpkg -x``.

The Debian mirror is never hard-coded: it is read from the host's own apt sources
(the entry signed by the Debian archive keyring), so the tool follows whatever mirror
the machine is configured with.

    python3 tools/debfetch.py containerd --suite sid        # prints the unpacked directory
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("KUBEFORGE_CACHE", REPO_ROOT / ".cache"))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class DebFetchError(RuntimeError):
    """A package could not be fetched; the message says what apt said."""


def debian_mirror_uri(sources_dir: str = "/etc/apt/sources.list.d", sources_list: str = "/etc/apt/sources.list") -> str:
    """Return the URI of the host's Debian archive (not security, not third-party)."""
    candidates: list[str] = []
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.sources"))):
        with open(path, encoding="utf-8") as handle:
            for stanza in handle.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _sep, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                suites = fields.get("suites", "").split()
                if "debian-archive-keyring" in fields.get("signed-by", "") and not any("security" in s for s in suites):
                    candidates.extend(fields.get("uris", "").split())
    if os.path.exists(sources_list):
        with open(sources_list, encoding="utf-8") as handle:
            for line in handle:
                match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
                if match and "security" not in match.group(2) and "debian" in match.group(1):
                    candidates.append(match.group(1))
    if not candidates:
        raise DebFetchError(
            "no Debian archive found in the host's apt sources (%s, %s): configure one, "
            "e.g. a deb822 .sources entry signed by %s" % (sources_dir, sources_list, KEYRING))
    return candidates[0]


def _apt_options(state: Path) -> list[str]:
    return [
        "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", "Dir::Etc::SourceParts=%s" % (state / "sources.list.d"),
        "-o", "Dir::State::Lists=%s" % (state / "lists"),
        "-o", "Dir::Cache=%s" % (state / "cache"),
        "-o", "Dir::State::Status=/var/lib/dpkg/status",
        "-o", "APT::Get::List-Cleanup=0",
        "-o", "Debug::NoLocking=1",
        "-qq",
    ]


def _run(argv: list[str], cwd: Path | None = None) -> str:
    env = dict(os.environ, LANG="C", LC_ALL="C", LANGUAGE="C")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DebFetchError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def _prepare_state(suite: str, cache: Path) -> Path:
    state = cache / "apt" / suite
    (state / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list.d" / ("kubeforge-%s.sources" % suite)
    content = "Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n" % (debian_mirror_uri(), suite, KEYRING)
    if not sources.exists() or sources.read_text(encoding="utf-8") != content:
        sources.write_text(content, encoding="utf-8")
        for old in (state / "lists").glob("*_Packages*"):
            old.unlink()
    if not any((state / "lists").glob("*_Packages*")):
        _run(["apt-get", *_apt_options(state), "update"])
    return state


def candidate_version(package: str, suite: str, cache: Path = DEFAULT_CACHE) -> str:
    state = _prepare_state(suite, cache)
    out = _run(["apt-cache", *_apt_options(state), "policy", package])
    match = re.search(r"Candidate:\s*(\S+)", out)
    if not match or match.group(1) == "(none)":
        raise DebFetchError("package %s has no candidate in Debian %s" % (package, suite))
    return match.group(1)


def fetch(package: str, suite: str, version: str | None = None, cache: Path = DEFAULT_CACHE) -> Path:
    """Download ``package`` from ``suite`` and unpack it; return the unpacked root (cached)."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    lock_path = cache / ".debfetch.lock"
    with open(lock_path, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = version or candidate_version(package, suite, cache)
        target = cache / "debs" / ("%s_%s" % (package, version.replace(":", "%3a")))
        if (target / ".complete").exists():
            return target
        state = _prepare_state(suite, cache)
        download = cache / "debs" / "download"
        download.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *_apt_options(state), "download", "%s=%s" % (package, version)], cwd=download)
        debs = sorted(download.glob("%s_*.deb" % package))
        wanted = [d for d in debs if version.split(":")[-1] in d.name.replace("%3a", ":")]
        if not wanted:
            raise DebFetchError("apt-get download %s=%s produced no .deb in %s" % (package, version, download))
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(wanted[-1]), str(target)])
        shutil.copy2(wanted[-1], target / wanted[-1].name)
        (target / ".complete").write_text(version + "\n", encoding="utf-8")
        return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--suite", default="bookworm")
    parser.add_argument("--version")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    args = parser.parse_args(argv)
    try:
        print(fetch(args.package, args.suite, args.version, Path(args.cache)))
    except DebFetchError as exc:
        print("debfetch: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
