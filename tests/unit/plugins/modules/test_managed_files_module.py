# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.managed_files main() on real files: check mode -> apply -> re-apply, attributes, symlinks, errors."""

from __future__ import annotations

import os
import pwd
import stat

import pytest
from module_harness import exits, fails
from ansible_collections.kubeforge.cluster.plugins.modules import managed_files

ME = pwd.getpwuid(os.getuid()).pw_name


def run_ok(args, **kwargs):
    return exits(managed_files.main, args, **kwargs)


def run_failed(args, **kwargs):
    return fails(managed_files.main, args, **kwargs)


def spec(tmp_path, config="a: 1\n", unit_mode="0644"):
    return {"directories": [{"name": "data", "path": str(tmp_path / "var" / "data"), "mode": "0700", "owner": ME, "group": ME}],
            "files": [{"name": "config", "path": str(tmp_path / "etc" / "app.yml"), "content": config, "owner": ME, "group": ME},
                      {"name": "unit", "path": str(tmp_path / "etc" / "app.service"), "content": "[Unit]\n\tx=1\n",
                       "mode": unit_mode, "owner": ME, "group": ME}]}


def test_check_apply_reapply(tmp_path):
    checked = run_ok(spec(tmp_path), check_mode=True, diff=True)
    assert checked["changed"] and checked["changed_names"] == ["data", "config", "unit"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "var").exists()
    assert [d["after"] for d in checked["diff"] if d["after_header"].endswith("app.yml")] == ["a: 1\n"]

    applied = run_ok(spec(tmp_path))
    assert applied["changed_names"] == ["data", "config", "unit"]
    assert (tmp_path / "etc" / "app.yml").read_text() == "a: 1\n"
    assert (tmp_path / "etc" / "app.service").read_text() == "[Unit]\n\tx=1\n"
    assert stat.S_IMODE((tmp_path / "var" / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "etc" / "app.yml").stat().st_mode) == 0o644

    assert not run_ok(spec(tmp_path), check_mode=True)["changed"]
    again = run_ok(spec(tmp_path))
    assert not again["changed"] and again["changed_names"] == [] and again["entries"]["config"]["reasons"] == []


def test_only_what_differs_changes_and_a_backup_is_kept(tmp_path):
    run_ok(spec(tmp_path))
    os.chmod(tmp_path / "var" / "data", 0o755)
    result = run_ok(dict(spec(tmp_path, config="a: 2\n"), backup=True), diff=True)
    assert result["changed_names"] == ["data", "config"]
    assert result["entries"]["data"]["reasons"] == ["mode 0755 -> 0700"]
    assert result["entries"]["config"]["reasons"] == ["content"]
    backup = result["entries"]["config"]["backup_file"]
    assert open(backup).read() == "a: 1\n" and (tmp_path / "etc" / "app.yml").read_text() == "a: 2\n"
    assert stat.S_IMODE((tmp_path / "var" / "data").stat().st_mode) == 0o700


def test_a_mode_change_alone_keeps_the_content(tmp_path):
    run_ok(spec(tmp_path))
    inode = (tmp_path / "etc" / "app.service").stat().st_ino
    result = run_ok(spec(tmp_path, unit_mode="0600"))
    assert result["changed_names"] == ["unit"] and result["entries"]["unit"]["reasons"] == ["mode 0644 -> 0600"]
    assert (tmp_path / "etc" / "app.service").stat().st_ino == inode


def test_a_symlink_to_a_file_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.yml"
    real.write_text("old\n")
    (tmp_path / "etc").mkdir()
    os.symlink(real, tmp_path / "etc" / "app.yml")
    run_ok(spec(tmp_path))
    assert os.path.islink(tmp_path / "etc" / "app.yml") and real.read_text() == "a: 1\n"


def test_a_link_to_dev_null_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/dev/null", tmp_path / "etc" / "app.yml")
    failed = run_failed(spec(tmp_path))
    assert "not a regular file" in failed["msg"] and not failed["changed"]
    assert not (tmp_path / "var").exists() and not (tmp_path / "etc" / "app.service").exists()


def test_an_unknown_owner_fails_before_any_write_and_only_warns_in_check_mode(tmp_path):
    args = spec(tmp_path)
    args["files"][1]["owner"] = "kubeforge-no-such-user"
    failed = run_failed(args)
    assert "the owner kubeforge-no-such-user:%s does not exist on this host" % ME in failed["msg"]
    assert not (tmp_path / "var").exists() and not (tmp_path / "etc").exists()
    checked = run_ok(args, check_mode=True)
    assert "unit" in checked["changed_names"] and any("does not exist" in w for w in checked.get("warnings", []))


@pytest.mark.parametrize("item, message", [
    ({"path": "etc/x", "content": ""}, "files[0].path: must be an absolute path"),
    ({"path": "/etc/../x", "content": ""}, "must not contain '..'"),
    ({"path": "/etc/x", "content": "a\x00b"}, "files[0].content: contains a NUL character"),
    ({"path": "/etc/x", "content": 3}, "files[0].content: must be the file's text"),
    ({"path": "/etc/x", "content": "", "mode": 420}, "files[0].mode: must be an octal string"),
    ({"path": "/etc/x", "content": "", "owner": "-rf"}, "must not start with '-'"),
    ({"path": "/etc/x", "content": "", "color": "red"}, "files[0]: has unknown keys color"),
    ({"path": "/etc/x"}, "files[0]: needs the keys content"),
])
def test_bad_input_is_refused_naming_the_item(item, message):
    failed = run_failed({"files": [item]})
    assert message in failed["msg"]


def test_a_path_listed_twice_is_refused(tmp_path):
    path = str(tmp_path / "x")
    failed = run_failed({"files": [{"path": path, "content": "a"}, {"path": path, "content": "b"}]})
    assert "listed twice" in failed["msg"] and not os.path.exists(path)


def test_follow_false_replaces_a_masking_link_with_the_file(tmp_path):
    unit = tmp_path / "app.service"
    os.symlink("/dev/null", unit)
    args = {"files": [{"name": "unit", "path": str(unit), "content": "[Service]\n", "follow": False}]}
    assert run_ok(args, check_mode=True)["entries"]["unit"]["reasons"] == ["replace link"] and os.path.islink(unit)
    assert run_ok(args)["changed_names"] == ["unit"]
    assert not os.path.islink(unit) and unit.read_text() == "[Service]\n"
    assert not run_ok(args)["changed"]


def test_a_name_listed_twice_is_refused(tmp_path):
    failed = run_failed({"files": [{"name": "x", "path": str(tmp_path / "a"), "content": "a"},
                                   {"name": "x", "path": str(tmp_path / "b"), "content": "b"}]})
    assert "the name x is listed twice" in failed["msg"] and not os.listdir(tmp_path)
