# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an artifact is and holds: checksum lists, formats, member selection, member hashes (tarballs built here)."""

from __future__ import annotations

import pytest
from artifact_builder import make_tarball, sha256
from ansible_collections.kubeforge.cluster.plugins.module_utils import _artifacts as a
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

H1 = "1" * 64
H2 = "a" * 64


def test_checksum_file_formats():
    text = "# release v1.36.0\n\n%s  crictl-v1.36.0-linux-amd64.tar.gz\n%s *./bin/runc.amd64\nSHA256 (cri-dockerd) = %s\nMD5 (x) = abc\n" % (
        H1, H2.upper(), H2)
    assert a.parse_checksum_file(text) == [(H1, "crictl-v1.36.0-linux-amd64.tar.gz"), (H2, "./bin/runc.amd64"), (H2, "cri-dockerd")]
    assert a.lookup_checksum(text, "runc.amd64", "/srv/artifacts/SHA256SUMS", "containerd_artifacts_dir") == H2


def test_checksum_file_without_the_artifact_names_file_and_variable():
    with pytest.raises(a.ArtifactError) as err:
        a.lookup_checksum("%s  other.tar.gz\n" % H1, "crictl.tar.gz", "/srv/artifacts/SHA256SUMS", "crictl_artifacts_dir")
    assert err.value.msg == ("crictl_artifacts_dir: crictl.tar.gz is not listed in /srv/artifacts/SHA256SUMS; "
                             "add its line (sha256sum crictl.tar.gz >> SHA256SUMS)")
    with pytest.raises(a.ArtifactError, match="lists crictl.tar.gz with 2 different checksums"):
        a.lookup_checksum("%s  crictl.tar.gz\n%s  x/crictl.tar.gz\n" % (H1, H2), "crictl.tar.gz", "/s/SHA256SUMS", "v")


@pytest.mark.parametrize("name, fmt", [("crictl-v1.36.0-linux-amd64.tar.gz", "tar"), ("x.TGZ", "tar"), ("k.tar.xz", "tar"),
                                       ("cri-tools_1.36.0_amd64.deb", "package"), ("x.rpm", "package"), ("runc.amd64", "binary"),
                                       ("crictl", "binary")])
def test_detect_format(name, fmt):
    assert a.detect_format(name) == fmt
    assert a.detect_format(name, "binary") == "binary"


def params(**kwargs):
    base = {"dest": None, "members": None, "mode": None, "strip_components": 0}
    base.update(kwargs)
    return base


def test_targets_from_members():
    targets = a.parse_targets(params(dest="/usr/local/bin", members=["crictl", {"name": "cri-dockerd", "dest": "/usr/bin/cri-dockerd",
                                                                                "mode": "0750"}], mode="0755"), "tar")
    assert [(t.member, t.dest, t.mode) for t in targets] == [("crictl", "/usr/local/bin/crictl", 0o755),
                                                             ("cri-dockerd", "/usr/bin/cri-dockerd", 0o750)]
    assert a.parse_targets(params(dest="/usr/local/bin"), "tar") is None  # every file
    [binary] = a.parse_targets(params(dest="/usr/local/sbin/runc"), "binary")
    assert (binary.member, binary.dest, binary.mode) == (None, "/usr/local/sbin/runc", 0o755)


@pytest.mark.parametrize("kwargs, fmt, message", [
    ({}, "binary", "dest: is required for a single binary"),
    ({"dest": "bin"}, "tar", "dest: must be an absolute path"),
    ({"dest": "/usr/local/bin", "members": ["../../etc/shadow"]}, "tar", "members[0]: '../../etc/shadow' must not contain '..'"),
    ({"members": ["crictl"]}, "tar", "members[0]: 'crictl' has no dest of its own"),
    ({"dest": "/b", "members": [{"name": "x", "owner": "bin"}]}, "tar", "members[0]: unknown keys owner"),
    ({"dest": "/b", "members": ["x", {"name": "y", "dest": "/b/x"}]}, "tar", "members: install more than one file at /b/x"),
    ({"dest": "/b", "mode": 493}, "tar", "mode: must be an octal string such as '0755'"),
    ({"dest": "/b", "members": ["x"]}, "package", "dest: does not apply to a package"),
    ({"dest": "/b/runc", "members": ["x"]}, "binary", "members: only applies to archives"),
])
def test_target_errors_name_the_option(kwargs, fmt, message):
    with pytest.raises(InputError) as err:
        a.parse_targets(params(**kwargs), fmt)
    assert str(err.value).startswith(message)


def test_source_rules():
    src = {"src": "/srv/a/crictl.tar.gz", "url": None, "checksum": None, "checksum_file": "/srv/a/SHA256SUMS", "variable": "crictl_artifacts_dir"}
    assert a.parse_source(src) == ("crictl_artifacts_dir", None)
    assert a.parse_source(dict(src, checksum="sha256:" + H1, checksum_file=None, variable=None)) == ("src", H1)
    url = {"src": None, "url": "https://example.invalid/crictl.tar.gz", "checksum": H1, "checksum_file": None, "variable": "crictl_url"}
    assert a.parse_source(url) == ("crictl_url", H1)
    for bad, message in [(dict(url, checksum=None), "checksum: is required with url"),
                         (dict(url, src="/x"), "src: give exactly one of src"),
                         (dict(src, checksum_file=None), "checksum: give checksum or checksum_file for /srv/a/crictl.tar.gz"),
                         (dict(url, variable="--x"), "variable: variable name '--x' must not start with '-'"),
                         (dict(url, url="file:///etc/shadow"), "url: must be a https or http URL")]:
        with pytest.raises(InputError) as err:
            a.parse_source(bad)
        assert str(err.value).startswith(message)


def test_member_hashes_strip_and_select(tmp_path):
    crictl, dockerd = b"crictl binary\n", b"cri-dockerd binary\n"
    tarball = make_tarball(tmp_path / "t.tar.gz", {"release/bin/crictl": crictl, "release/bin/cri-dockerd": (dockerd, 0o4775),
                                                   "release/README": (b"read me", 0o644)}, directories=["release", "release/bin"])
    targets = a.parse_targets(params(dest="/usr/local/bin", members=["crictl", "cri-dockerd"], strip_components=2), "tar")
    assert a.member_hashes(str(tarball), 2, targets, "/usr/local/bin", "v", "t.tar.gz") == {
        "/usr/local/bin/crictl": {"sha256": sha256(crictl), "mode": "0755"},
        "/usr/local/bin/cri-dockerd": {"sha256": sha256(dockerd), "mode": "0755"},  # set-id and group write dropped
    }
    # every file, paths kept below dest
    assert sorted(a.member_hashes(str(tarball), 1, None, "/opt/x", "v", "t.tar.gz")) == ["/opt/x/README", "/opt/x/bin/cri-dockerd", "/opt/x/bin/crictl"]


def test_missing_member_lists_what_the_archive_has(tmp_path):
    tarball = make_tarball(tmp_path / "crictl-v1.36.0-linux-amd64.tar.gz", {"crictl": b"x"})
    targets = a.parse_targets(params(dest="/usr/local/bin", members=["bin/crictl"]), "tar")
    with pytest.raises(a.ArtifactError) as err:
        a.member_hashes(str(tarball), 0, targets, "/usr/local/bin", "crictl_artifacts_dir", tarball.name)
    assert err.value.msg == ("crictl_artifacts_dir: crictl-v1.36.0-linux-amd64.tar.gz has no member bin/crictl "
                             "(after strip_components=0); it has: crictl")


def test_links_inside_the_archive_are_installed_as_links_when_every_file_is(tmp_path):
    tarball = make_tarball(tmp_path / "kata.tar.gz", {"opt/kata/share/configuration-qemu.toml": b"q", "opt/kata/bin/shim": b"s"},
                           links={"opt/kata/share/configuration.toml": "configuration-qemu.toml",
                                  "opt/kata/bin/kata-shim": "../bin/shim"})
    files = a.member_hashes(str(tarball), 0, None, "/", "v", "kata.tar.gz")
    assert files["/opt/kata/share/configuration.toml"] == {"link": "configuration-qemu.toml"}
    assert files["/opt/kata/bin/kata-shim"] == {"link": "../bin/shim"}
    assert files["/opt/kata/bin/shim"]["sha256"] == a.hashlib.sha256(b"s").hexdigest()


@pytest.mark.parametrize("linkname", ["/etc/shadow", "../../../etc/shadow", "../../..", ""])
def test_links_leaving_the_archive_are_refused(tmp_path, linkname):
    tarball = make_tarball(tmp_path / "l.tar.gz", {"opt/x/real": b"x"}, links={"opt/x/alias": linkname})
    with pytest.raises(a.ArtifactError, match="member opt/x/alias is a link to .*, outside the archive's files"):
        a.member_hashes(str(tarball), 0, None, "/", "v", "l.tar.gz")


def test_links_and_broken_archives_are_refused(tmp_path):
    tarball = make_tarball(tmp_path / "l.tar.gz", {"bin/real": b"x"}, links={"bin/alias": "real"})
    targets = a.parse_targets(params(dest="/opt", members=["bin/alias"]), "tar")
    with pytest.raises(a.ArtifactError, match="member bin/alias is not a regular file"):
        a.member_hashes(str(tarball), 0, targets, "/opt", "v", "l.tar.gz")
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(a.ArtifactError, match="^v: bad.tar.gz is not a readable tar archive"):
        a.member_hashes(str(tmp_path / "bad.tar.gz"), 0, None, "/opt", "v", "bad.tar.gz")


def test_path_traversal_members_are_skipped(tmp_path):
    tarball = make_tarball(tmp_path / "evil.tar.gz", {"../../etc/cron.d/x": b"evil", "ok": b"fine"})
    assert list(a.member_hashes(str(tarball), 0, None, "/opt/x", "v", "evil.tar.gz")) == ["/opt/x/ok"]
