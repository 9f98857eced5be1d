# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/filter/artifacts.py: sha256sum lists parsed, controller files verified against them."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.artifacts import FilterModule, sha256sums, verify_sha256sums

HEX_A = hashlib.sha256(b"a").hexdigest()


def test_sha256sum_output_in_both_modes_with_comments():
    text = "# release 1.7\n\n%s  containerd-1.7.tar.gz\n%s *runc.amd64\n%s  ./sub/dir/crictl\n" % (HEX_A.upper(), HEX_A, HEX_A)
    assert sha256sums(text) == {"containerd-1.7.tar.gz": HEX_A, "runc.amd64": HEX_A, "crictl": HEX_A}


@pytest.mark.parametrize("line", ["abc  file", HEX_A, "%s" % ("g" * 64) + "  file"])
def test_a_malformed_line_is_named(line):
    with pytest.raises(AnsibleFilterError, match=r"SHA256SUMS line 2 is not 'SHA256  FILENAME'"):
        sha256sums("%s  ok\n%s\n" % (HEX_A, line), "SHA256SUMS")


def test_verify_accepts_matching_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"a")
    paths = [str(tmp_path / "a.bin")]
    assert verify_sha256sums(paths, {"a.bin": HEX_A}) == paths


def test_verify_names_every_problem_and_the_fix(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "b.bin").write_bytes(b"tampered")
    (tmp_path / "c.bin").write_bytes(b"c")
    with pytest.raises(AnsibleFilterError) as info:
        verify_sha256sums([str(tmp_path / n) for n in ("a.bin", "b.bin", "c.bin")], {"a.bin": HEX_A, "b.bin": HEX_A},
                          "containerd_artifacts_dir=/x", "SHA256SUMS")
    message = str(info.value)
    assert message.startswith("containerd_artifacts_dir=/x: ")
    assert "b.bin has sha256 %s, SHA256SUMS says %s" % (hashlib.sha256(b"tampered").hexdigest(), HEX_A) in message
    assert "c.bin is not listed in SHA256SUMS" in message
    assert "a.bin" not in message.replace("b.bin", "")  .replace("c.bin", "").split(": ", 1)[1]
    assert message.endswith("(sha256sum FILES > SHA256SUMS).")


def test_a_changed_file_is_hashed_again(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"a")
    verify_sha256sums([str(path)], {"a.bin": HEX_A})
    path.write_bytes(b"bb")  # new size: the cache key changes
    with pytest.raises(AnsibleFilterError, match="a.bin has sha256"):
        verify_sha256sums([str(path)], {"a.bin": HEX_A})


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"sha256sums", "verify_sha256sums"}
