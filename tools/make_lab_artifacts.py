# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fill an artifacts directory the way an air-gapped operator would, for the lab and its scenarios (stdlib only).

The real ``cri-dockerd`` and ``crictl`` binaries come from ``shared/bin`` beside the checkout (built from upstream
source, see its README; never committed here) and are packed into upstream's release file names and layouts:
``cri-dockerd-VERSION.amd64.tgz`` (``cri-dockerd/cri-dockerd``) and ``crictl-vVERSION-linux-amd64.tar.gz``
(``crictl``). Kata's release is a stand-in (``tools/make_kata_standin.py``). ``SHA256SUMS`` lists them all.

    python3 tools/make_lab_artifacts.py --output-dir DIR [--shared-bin DIR]
    # prints one line per artifact: <sha256>  <file>
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_kata_standin  # noqa: E402  (a sibling tool)

REPO = Path(__file__).resolve().parents[1]
CRI_DOCKERD_VERSION = "0.4.3"
CRICTL_VERSION = "1.36.0"


def find_shared_bin():
    """``shared/bin`` beside the checkout (the project's worktrees live one or two levels below it)."""
    for candidate in (REPO.parent / "shared" / "bin", REPO.parents[1] / "shared" / "bin", Path("/work/shared/bin")):
        if (candidate / "cri-dockerd").is_file() and (candidate / "crictl").is_file():
            return candidate
    return None


def _pack(path, entries):
    """A .tar.gz of ``entries`` (archive name -> source file), fixed mtime and owner, mode 0755. Fastest gzip level:
    the 80 MB of binaries took most of the scenario's prepare step at level 9, for files that never leave this host."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, source in entries.items():
            info = archive.gettarinfo(str(source), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "root", "root", 0o755
            with open(source, "rb") as handle:
                archive.addfile(info, handle)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(output_dir, shared_bin):
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = []
    dockerd = output_dir / ("cri-dockerd-%s.amd64.tgz" % CRI_DOCKERD_VERSION)
    _pack(dockerd, {"cri-dockerd/cri-dockerd": shared_bin / "cri-dockerd"})
    files.append(dockerd)
    crictl = output_dir / ("crictl-v%s-linux-amd64.tar.gz" % CRICTL_VERSION)
    _pack(crictl, {"crictl": shared_bin / "crictl"})
    files.append(crictl)
    kata = output_dir / ("kata-static-%s-amd64.tar.xz" % make_kata_standin.DEFAULT_VERSION)
    make_kata_standin.build(str(kata))
    files.append(kata)
    lines = ["%s  %s\n" % (sha256(path), path.name) for path in files]
    (output_dir / "SHA256SUMS").write_text("".join(lines))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--shared-bin", help="directory with the real cri-dockerd and crictl (default: shared/bin beside the checkout)")
    args = parser.parse_args(argv)
    shared_bin = Path(args.shared_bin) if args.shared_bin else find_shared_bin()
    if shared_bin is None or not (shared_bin / "cri-dockerd").is_file():
        print("no shared/bin with the real cri-dockerd and crictl beside this checkout (%s); pass --shared-bin" % REPO.parent,
              file=sys.stderr)
        return 2
    for line in build(args.output_dir, shared_bin):
        sys.stdout.write(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
