# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a tiny OCI image archive (an OCI image layout in a tar file) with the standard library only.

No registry is contacted: the single layer is made here (one text file), so air-gapped image import
(``ctr -n k8s.io images import``) can be tested anywhere. The output is reproducible: the same name,
architecture and content give byte-identical archives and the same manifest digest.

    python3 tools/make_test_image.py --name registry.lab.invalid/kubeforge/test:1.0 --output test.tar
    # prints: <name> <manifest digest> <path>
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    """A deterministic tar (fixed mtime, owner and order) of ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_image(name: str, arch: str = "amd64", content: str = "kubeforge test image\n") -> tuple[bytes, str]:
    """Return ``(archive bytes, manifest digest)`` of a one-layer OCI image named ``name``."""
    if ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        raise ValueError("image name %r has no tag: use a full reference such as registry.lab.invalid/test:1.0" % name)
    layer_tar = _tar_bytes({"kubeforge-test-image.txt": content.encode()})
    layer_gz = gzip.compress(layer_tar, mtime=0)
    config = _json(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/kubeforge-test-image.txt"], "Labels": {"org.opencontainers.image.title": "kubeforge test image"}},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(layer_tar)]},
            "history": [{"created_by": "tools/make_test_image.py", "created": "1970-01-01T00:00:00Z"}],
            "created": "1970-01-01T00:00:00Z",
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": _sha256(config), "size": len(config)},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": _sha256(layer_gz), "size": len(layer_gz)}],
        }
    )
    manifest_digest = _sha256(manifest)
    tag = name.rsplit(":", 1)[-1] if "@" not in name else name.rsplit("@", 1)[-1]
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                    # what containerd names the image after import, and the OCI tag
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
                }
            ],
        }
    )
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for blob in (layer_gz, config, manifest):
        files["blobs/sha256/" + _sha256(blob).split(":", 1)[1]] = blob
    return _tar_bytes(files), manifest_digest


def write_atomic(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically; return False (and leave it alone) when already identical."""
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".make_test_image.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--name", default="registry.lab.invalid/kubeforge/test:1.0", help="full image reference with a tag")
    parser.add_argument("--arch", default="amd64", help="image architecture (GOARCH spelling: amd64, arm64, ...)")
    parser.add_argument("--content", default="kubeforge test image\n", help="text of the single file in the layer")
    parser.add_argument("--output", required=True, help="path of the archive to write")
    args = parser.parse_args(argv)
    try:
        data, digest = build_image(args.name, args.arch, args.content)
    except ValueError as exc:
        parser.error(str(exc))
    write_atomic(args.output, data)
    print("%s %s %s" % (args.name, digest, os.path.abspath(args.output)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
