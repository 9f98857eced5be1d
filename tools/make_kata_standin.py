# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a STAND-IN for Kata Containers' release tarball, for tests only (standard library only).

No Kata binary can be had here (its Go runtime has no vendor directory and no Go module proxy is reachable), so the
install path of the kata role is tested with this tarball instead. It has the layout of upstream's
``kata-static-VERSION-ARCH.tar.xz`` (everything under ``./opt/kata``, ``configuration.toml`` a link to
``configuration-qemu.toml``, versioned kernel and image files with ``vmlinux.container`` and ``kata-containers.img``
links), but every file says it is a stand-in: the two programs print that and exit 1, so nothing could mistake it for
a working Kata. The output is reproducible (fixed mtimes, owners and order).

    python3 tools/make_kata_standin.py --output-dir DIR [--version 0.0.0-kubeforge-standin] [--arch amd64]
    # writes DIR/kata-static-VERSION-ARCH.tar.xz and DIR/SHA256SUMS (appending), prints the tarball's path
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile

DEFAULT_VERSION = "0.0.0-kubeforge-standin"
BANNER = "kubeforge test stand-in for Kata Containers %s: NOT Kata, it cannot run anything"


def _program(name, version):
    return ("#!/bin/sh\n# %s\n" % (BANNER % version)
            + ('case "$1" in --version|version) echo "%s : %s (stand-in)"; exit 0 ;; esac\n' % (name, version))
            + 'echo "%s: %s" >&2\nexit 1\n' % (name, BANNER % version)).encode()


def members(version):
    """``(files, links)``: archive path -> (bytes, mode), and link path -> target, as upstream lays them out."""
    share = "./opt/kata/share"
    files = {
        "./opt/kata/bin/containerd-shim-kata-v2": (_program("containerd-shim-kata-v2", version), 0o755),
        "./opt/kata/bin/kata-runtime": (_program("kata-runtime", version), 0o755),
        share + "/defaults/kata-containers/configuration-qemu.toml": (
            ("# %s\n[hypervisor.qemu]\npath = \"/opt/kata/bin/qemu-system-x86_64\"\n"
             "kernel = \"/opt/kata/share/kata-containers/vmlinux.container\"\n"
             "image = \"/opt/kata/share/kata-containers/kata-containers.img\"\n" % (BANNER % version)).encode(), 0o644),
        share + "/defaults/kata-containers/configuration-clh.toml": (("# %s\n[hypervisor.clh]\n" % (BANNER % version)).encode(), 0o644),
        share + "/kata-containers/vmlinux-%s" % version: (("%s\n" % (BANNER % version)).encode(), 0o644),
        share + "/kata-containers/kata-containers-%s.img" % version: (("%s\n" % (BANNER % version)).encode(), 0o644),
    }
    links = {
        share + "/defaults/kata-containers/configuration.toml": "configuration-qemu.toml",
        share + "/kata-containers/vmlinux.container": "vmlinux-%s" % version,
        share + "/kata-containers/kata-containers.img": "kata-containers-%s.img" % version,
    }
    return files, links


def build(path, version=DEFAULT_VERSION):
    files, links = members(version)
    directories = sorted({os.path.dirname(name) for name in list(files) + list(links)}
                         | {"./opt", "./opt/kata", "./opt/kata/share", "./opt/kata/share/defaults"})
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT) as archive:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            archive.addfile(info)
        for name in sorted(files):
            data, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
        for name in sorted(links):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, links[name], 0o777, 0
            archive.addfile(info)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--arch", default="amd64")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "kata-static-%s-%s.tar.xz" % (args.version, args.arch))
    build(path, args.version)
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    sums = os.path.join(args.output_dir, "SHA256SUMS")
    name = os.path.basename(path)
    kept = []
    if os.path.exists(sums):
        with open(sums) as handle:
            kept = [line for line in handle if not line.rstrip("\n").endswith("  " + name)]
    with open(sums, "w") as handle:
        handle.writelines(kept + ["%s  %s\n" % (digest, name)])
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
