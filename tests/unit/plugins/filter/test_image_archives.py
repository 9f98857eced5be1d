# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/filter/image_archives.py and tools/make_test_image.py: the names and digests ctr will see, what to import."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import make_test_image
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.image_archives import (
    FilterModule,
    image_archive_refs,
    images_to_import,
)


def run(path):
    """(rc, {"path", "images"} or None, error text) as the old command-line helper reported it."""
    try:
        archives = image_archive_refs([str(path)])
    except AnsibleFilterError as exc:
        return 1, None, str(exc)
    return 0, archives[0], ""


def write_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_test_image_is_reproducible_and_consistent(tmp_path):
    data1, digest1 = make_test_image.build_image("registry.lab.invalid/kubeforge/test:1.0")
    data2, digest2 = make_test_image.build_image("registry.lab.invalid/kubeforge/test:1.0")
    assert data1 == data2 and digest1 == digest2
    assert make_test_image.build_image("registry.lab.invalid/kubeforge/test:1.1")[1] == digest1  # same manifest
    archive = tmp_path / "img.tar"
    assert make_test_image.write_atomic(str(archive), data1) is True
    assert make_test_image.write_atomic(str(archive), data1) is False
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest_blob = tar.extractfile("blobs/sha256/" + digest1.split(":")[1]).read()
        assert "sha256:" + hashlib.sha256(manifest_blob).hexdigest() == digest1
        manifest = json.loads(manifest_blob)
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = tar.extractfile("blobs/sha256/" + desc["digest"].split(":")[1]).read()
            assert len(blob) == desc["size"] and "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"]
    assert index["manifests"][0]["digest"] == digest1


def test_oci_archive_names_and_digest(tmp_path):
    archive = tmp_path / "img.tar"
    make_test_image.main(["--name", "registry.lab.invalid/kubeforge/pause:3.10", "--output", str(archive)])
    rc, out, dummy = run(archive)
    assert rc == 0
    digest = make_test_image.build_image("registry.lab.invalid/kubeforge/pause:3.10")[1]
    assert out["images"] == [{"name": "registry.lab.invalid/kubeforge/pause:3.10", "digest": digest}]


def test_oci_full_ref_name_without_containerd_annotation(tmp_path):
    index = {"manifests": [{"digest": "sha256:" + "a" * 64, "annotations": {"org.opencontainers.image.ref.name": "busybox:1.36"}}]}
    write_tar(tmp_path / "a.tar", {"index.json": json.dumps(index).encode(), "oci-layout": b"{}"})
    rc, out, dummy = run(tmp_path / "a.tar")
    assert rc == 0 and out["images"] == [{"name": "docker.io/library/busybox:1.36", "digest": "sha256:" + "a" * 64}]


def test_docker_save_archive_is_normalised(tmp_path):
    manifest = [{"RepoTags": ["busybox:1.36", "myorg/app:2", "registry.lab.invalid:5000/x/y:1", "localhost/z:3"]}]
    write_tar(tmp_path / "d.tar", {"manifest.json": json.dumps(manifest).encode()})
    rc, out, dummy = run(tmp_path / "d.tar")
    assert rc == 0
    assert [i["name"] for i in out["images"]] == [
        "docker.io/library/busybox:1.36", "docker.io/myorg/app:2", "registry.lab.invalid:5000/x/y:1", "localhost/z:3"]
    assert {i["digest"] for i in out["images"]} == {None}


def test_unnamed_archive_is_refused(tmp_path):
    index = {"manifests": [{"digest": "sha256:" + "b" * 64, "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}
    write_tar(tmp_path / "u.tar", {"index.json": json.dumps(index).encode()})
    rc, out, err = run(tmp_path / "u.tar")
    assert rc == 1 and out is None
    assert "names no image" in err and "io.containerd.image.name" in err


def test_not_an_archive(tmp_path):
    (tmp_path / "x.tar").write_text("not a tar")
    rc, dummy, err = run(tmp_path / "x.tar")
    assert rc == 1 and "not a readable image archive" in err


def test_directories_expand_to_their_tar_files_and_missing_paths_are_named(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("b", "a"):
        make_test_image.main(["--name", "registry.lab.invalid/t/%s:1" % name, "--output", str(tmp_path / "imgs" / (name + ".tar"))])
    (tmp_path / "imgs" / "notes.txt").write_text("not an archive")
    archives = image_archive_refs([str(tmp_path / "imgs")])
    assert [Path(a["path"]).name for a in archives] == ["a.tar", "b.tar"]
    with pytest.raises(AnsibleFilterError, match="containerd_image_artifacts names archives that do not exist on the "
                       "controller: .*/nope.tar"):
        image_archive_refs([str(tmp_path / "imgs"), str(tmp_path / "nope.tar")])


def test_images_to_import_compares_names_and_digests():
    archives = [
        {"path": "/a/pause.tar", "images": [{"name": "r.lab/pause:3.10", "digest": "sha256:" + "1" * 64}]},
        {"path": "/a/test.tar", "images": [{"name": "r.lab/test:1.0", "digest": "sha256:" + "2" * 64}]},
        {"path": "/a/docker.tar", "images": [{"name": "docker.io/library/busybox:1", "digest": None}]},
        {"path": "/a/new.tar", "images": [{"name": "r.lab/new:1", "digest": None}]},
    ]
    ctr = (
        "REF                            TYPE                                       DIGEST      SIZE PLATFORMS LABELS\n"
        "r.lab/pause:3.10               application/vnd.oci.image.manifest.v1+json sha256:" + "1" * 64 + " 1.0 KiB linux/amd64 -\n"
        "r.lab/test:1.0                 application/vnd.oci.image.manifest.v1+json sha256:" + "3" * 64 + " 1.0 KiB linux/amd64 -\n"
        "docker.io/library/busybox:1    application/vnd.oci.image.manifest.v1+json sha256:" + "4" * 64 + " 1.0 KiB linux/amd64 -\n"
    )
    # pause is present with its digest; test's tag points elsewhere; busybox's digest is unknown but the name exists
    assert images_to_import(archives, ctr) == [
        {"path": "/a/test.tar", "images": ["r.lab/test:1.0"]},
        {"path": "/a/new.tar", "images": ["r.lab/new:1"]},
    ]
    assert images_to_import(archives, "") == [{"path": a["path"], "images": [i["name"] for i in a["images"]]} for a in archives]


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"image_archive_refs", "images_to_import"}
