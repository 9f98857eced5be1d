# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managed files: the symlink rule and the replace that never loses another writer's change."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import threading

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _files as f


class FakeModule:
    """The two AnsibleModule methods replace_file uses, with their real semantics."""

    def atomic_move(self, src, dest, unsafe_writes=False):
        if os.path.exists(dest):
            st = os.stat(dest)
            os.chmod(src, st.st_mode & 0o7777)
        os.rename(src, dest)

    def backup_local(self, path):
        backup = path + ".bak"
        shutil.copy2(path, backup)
        return backup

    def selinux_enabled(self):
        return False


def test_symlink_to_regular_file_resolves_to_target(tmp_path):
    target = tmp_path / "real.conf"
    target.write_text("x")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    assert f.resolve_managed(str(link)) == str(target)
    f.replace_file(FakeModule(), f.resolve_managed(str(link)), "y")
    assert link.is_symlink() and target.read_text() == "y"


def test_symlink_to_dev_null_is_refused(tmp_path):
    link = tmp_path / "99-x.conf"
    link.symlink_to("/dev/null")
    with pytest.raises(f.ManagedFileError, match="not a regular file.*masks"):
        f.resolve_managed(str(link))


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "x.conf"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(f.ManagedFileError, match="does not exist"):
        f.resolve_managed(str(link))


def test_directory_is_refused(tmp_path):
    with pytest.raises(f.ManagedFileError, match="not a regular file"):
        f.resolve_managed(str(tmp_path))


def test_non_utf8_names_the_file(tmp_path):
    path = tmp_path / "x.conf"
    path.write_bytes(b"a = \xff\n")
    with pytest.raises(f.ManagedFileError, match=r"x.conf is not UTF-8 text \(byte 0xff at offset 4\)"):
        f.read_text(str(path))


def test_replace_keeps_mode_and_makes_backup(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("old")
    os.chmod(path, 0o600)
    backup = f.replace_file(FakeModule(), str(path), "new", expected=b"old", backup=True)
    assert path.read_text() == "new" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert open(backup).read() == "old"


def test_changed_underneath_fails_and_writes_nothing(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("theirs")
    with pytest.raises(f.ManagedFileError, match="changed by someone else"):
        f.replace_file(FakeModule(), str(path), "mine", expected=f.sha256_hex(b"before"))
    assert path.read_text() == "theirs"
    with pytest.raises(f.ManagedFileError, match="changed by someone else"):
        f.replace_file(FakeModule(), str(path), "mine", expected=False)
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]  # no staged file left behind


def test_concurrent_writers_never_lose_an_update(tmp_path):
    """Many threads read-modify-write one file: every append that reports success is in the final file."""
    path = tmp_path / "shared.txt"
    path.write_text("")
    succeeded = []

    def writer(number):
        for _attempt in range(50):
            before = f.read_bytes(str(path))
            try:
                f.replace_file(FakeModule(), str(path), before + b"%d\n" % number, expected=before)
            except f.ManagedFileError:
                continue
            succeeded.append(number)
            return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text().split()
    assert sorted(map(int, lines)) == sorted(succeeded)
    assert len(succeeded) >= 1


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".kubeforge-" in p.name)


def test_staged_files_replace_all_together(tmp_path):
    bin_dir, sbin_dir = tmp_path / "bin", tmp_path / "sbin"
    bin_dir.mkdir()
    (bin_dir / "crictl").write_bytes(b"old crictl")
    with f.StagedFiles() as staged:
        digest = staged.stage(str(bin_dir / "crictl"), io.BytesIO(b"new crictl"), 0o755)
        staged.stage(str(sbin_dir / "runc"), io.BytesIO(b"runc"), 0o700)
        assert (bin_dir / "crictl").read_bytes() == b"old crictl", "nothing visible changes before commit"
        assert len(_leftovers(bin_dir)) == 1
        assert staged.commit() == [str(bin_dir / "crictl"), str(sbin_dir / "runc")]
    assert digest == hashlib.sha256(b"new crictl").hexdigest()
    assert (bin_dir / "crictl").read_bytes() == b"new crictl" and (sbin_dir / "runc").read_bytes() == b"runc"
    assert stat.S_IMODE((sbin_dir / "runc").stat().st_mode) == 0o700
    assert _leftovers(bin_dir) == [] and _leftovers(sbin_dir) == []


def test_staged_files_put_everything_back_when_one_rename_fails(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"old " + name.encode())
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the third file cannot be replaced
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    staged = f.StagedFiles()
    with staged:
        for name in ("a", "b", "c"):
            staged.stage(str(tmp_path / name), io.BytesIO(b"new " + name.encode()), 0o755)
        monkeypatch.setattr(os, "rename", rename)
        with pytest.raises(f.ManagedFileError, match="every file was left as it was"):
            staged.commit()
        monkeypatch.setattr(os, "rename", real_rename)
    assert [(tmp_path / n).read_bytes() for n in ("a", "b", "c")] == [b"old a", b"old b", b"old c"]
    assert _leftovers(tmp_path) == []


def test_staged_files_remove_new_files_on_failure_and_stage_errors_leave_nothing(tmp_path, monkeypatch):
    (tmp_path / "old").write_bytes(b"old")

    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError), f.StagedFiles() as staged:
        staged.stage(str(tmp_path / "new"), io.BytesIO(b"new"), 0o755)
        staged.stage(str(tmp_path / "old"), Broken(), 0o755)
    assert not (tmp_path / "new").exists() and (tmp_path / "old").read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_remove_file_compares_first_and_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "real.conf"
    target.write_text("x")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    with pytest.raises(f.ManagedFileError, match="changed by someone else.*nothing was removed"):
        f.remove_file(FakeModule(), str(link), expected=b"y")
    assert link.is_symlink()
    assert f.remove_file(FakeModule(), str(link), expected=b"x") is None
    assert not os.path.lexists(link) and target.read_text() == "x"
    assert f.remove_file(FakeModule(), str(tmp_path / "none.conf"), expected=False) is None
    backup = f.remove_file(FakeModule(), str(target), expected=b"x", backup=True)
    assert open(backup).read() == "x" and not target.exists()


def test_read_managed_follows_the_symlink_rule(tmp_path):
    target = tmp_path / "real.conf"
    target.write_bytes(b"a\n")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    assert f.read_managed(str(link)) == (str(target), b"a\n", "a\n")
    assert f.read_managed(str(tmp_path / "missing.conf")) == (str(tmp_path / "missing.conf"), None, None)
    target.write_bytes(b"\xfe")
    with pytest.raises(f.ManagedFileError, match="link.conf is not UTF-8 text \\(byte 0xfe at offset 0\\)"):
        f.read_managed(str(link))


def test_a_new_file_gets_the_mode_asked_for_with_the_real_atomic_move(tmp_path):
    # AnsibleModule.atomic_move chmods a file it creates to 0666 & ~umask: a 0600 secret must never pass through that
    from ansible.module_utils.basic import AnsibleModule
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    old_umask = os.umask(0o022)
    try:
        f.replace_file(module, str(tmp_path / "secret.json"), '{"token": "x"}', mode=0o600)
        f.replace_file(module, str(tmp_path / "public.json"), "{}", mode=0o644)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "public.json").stat().st_mode) == 0o644
    (tmp_path / "secret.json").chmod(0o640)
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    f.replace_file(module, str(tmp_path / "secret.json"), '{"token": "y"}', mode=0o600)
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o640, "an existing file keeps its mode"
