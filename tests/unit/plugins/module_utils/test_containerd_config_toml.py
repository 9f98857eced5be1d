# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Editing TOML text in place: the section cut gives the same result as the whole document, or is not used."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit
import tomllib
from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config_toml as t
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError

FIXTURES = Path(__file__).resolve().parents[3] / "integration" / "fixtures" / "containerd"
CRI = ("plugins", "io.containerd.grpc.v1.cri")
NVIDIA_APPENDED = (FIXTURES / "v2-default-1.7.toml").read_text() + '''
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false
'''


def expect(text, edits):
    """The data ``edits`` should produce, computed without any TOML writer."""
    data = tomllib.loads(text)
    for edit in edits:
        parent = data
        for part in edit.path[:-1]:
            parent = parent.setdefault(part, {})
        if isinstance(edit, t.Set):
            parent[edit.path[-1]] = edit.value
        elif isinstance(edit, t.Table):
            parent.setdefault(edit.path[-1], {})
        else:
            parent[edit.path[-1]] = [x for x in parent[edit.path[-1]] if x not in edit.items]
    return data


def whole_document(text, edits):
    sections = t._Sections(text, split=False)
    return sections.apply_all(edits)


EDITS = [
    t.Set(CRI + ("sandbox_image",), "example.org/pause:9"),
    t.Set(CRI + ("containerd", "runtimes", "nvidia", "options", "SystemdCgroup"), True),
    t.Set(CRI + ("containerd", "runtimes", "kata", "runtime_type"), "io.containerd.kata.v2"),
    t.Set(CRI + ("containerd", "runtimes", "kata", "options", "ConfigPath"), "/etc/kata.toml"),
    t.Set(("oom_score",), -999),
    t.Table(("x-vendor", "empty")),
]


@pytest.mark.parametrize("in_line", [True, False])
@pytest.mark.parametrize("text", [NVIDIA_APPENDED, (FIXTURES / "v2-default-1.7.toml").read_text()])
def test_section_edit_equals_whole_document_edit_and_keeps_other_sections_verbatim(text, in_line):
    sections = t._Sections(text, split=True, in_line=in_line)
    assert sections.usable()
    cut = sections.apply_all(EDITS)
    assert tomllib.loads(cut) == tomllib.loads(whole_document(text, EDITS)) == expect(text, EDITS)
    edited = set(sections.docs)
    for index, chunk in enumerate(sections.chunks):
        if index not in edited:
            assert chunk in cut
    assert len(edited) <= 4, "only the sections the edits land in are parsed"


@pytest.mark.parametrize("before, after", [
    ('  sandbox_image = "a"  # keep\n', '  sandbox_image = "b"  # keep\n'),
    ("  sandbox_image = 'a#1' # the # stays\n", "  sandbox_image = 'b' # the # stays\n"),
    ('  "sandbox_image"="a"\n', '  "sandbox_image"="b"\n'),
])
def test_a_changed_value_is_replaced_in_its_line_without_parsing(before, after):
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n' + before + '  other = 1\n'
    sections = t._Sections(text, split=True, in_line=True)
    assert sections.usable()
    result = sections.apply_all([t.Set(CRI + ("sandbox_image",), "b")])
    assert result == text.replace(before, after) and sections.docs == {}


def test_a_multi_line_value_is_not_replaced_in_line():
    text = '[a]\nx = [\n  1,\n]\ny = """\nx = 3\n"""\n'
    edits = [t.Set(("a", "x"), 2)]
    assert tomllib.loads(t.apply_edits(text, edits, expect(text, edits))) == {"a": {"x": 2, "y": "x = 3\n"}}


def test_remove_items_keeps_the_rest_of_the_array_and_its_layout():
    text = 'version = 2\ndisabled_plugins = [\n  "cri",  # docker\n  "io.containerd.internal.v1.restart",\n]\n[a]\nb = 1\n'
    edits = [t.RemoveItems(("disabled_plugins",), ("cri",))]
    after = t.apply_edits(text, edits, expect(text, edits))
    assert '"io.containerd.internal.v1.restart",\n' in after and '"cri"' not in after and after.endswith("[a]\nb = 1\n")


def test_literal_strings_stay_literal():
    text = "[a]\nx = 'old'\ny = 'keep'\n"
    after = t.apply_edits(text, [t.Set(("a", "x"), "new")], {"a": {"x": "new", "y": "keep"}})
    assert after == "[a]\nx = 'new'\ny = 'keep'\n"


def test_header_like_line_inside_a_value_is_not_cut_there():
    text = 'version = 2\n# matrix\nx = [\n  [1, 2],\n]\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "a"  # keep\n'
    edits = [t.Set(CRI + ("sandbox_image",), "b")]
    assert t.apply_edits(text, edits, expect(text, edits)) == text.replace('sandbox_image = "a"', 'sandbox_image = "b"')


def test_array_of_tables_replaced_as_a_whole_falls_back_to_the_whole_document():
    text = '[p]\nx = 1\n[[p.list]]\na = 1\n[[p.list]]\na = 2\n[q]\ny = 2\n'
    edits = [t.Set(("p", "list"), [{"a": 3}])]
    after = t.apply_edits(text, edits, expect(text, edits))
    assert tomllib.loads(after)["p"]["list"] == [{"a": 3}] and after.endswith("[q]\ny = 2\n")


def test_an_edit_the_structure_cannot_take_names_the_key():
    text = "[[a]]\nx = 1\n"
    with pytest.raises(ContainerdConfigError, match=r"^cannot write a\.y into the file \(TypeError: .*\); nothing was changed$"):
        t.apply_edits(text, [t.Set(("a", "y"), 1)], {"a": [{"x": 1}], "y": 1})


def test_tomlkits_own_errors_name_the_key_too(monkeypatch):
    def refuse(*_args):
        raise tomlkit.exceptions.KeyAlreadyPresent("y")

    monkeypatch.setattr(t._Sections, "_container", refuse)
    with pytest.raises(ContainerdConfigError, match=r"^cannot write x\.y into the file \(KeyAlreadyPresent: .*\); nothing was changed$"):
        t._Sections("[x]\n", split=False).apply_all([t.Set(("x", "y"), 1)])


def test_a_result_that_does_not_read_back_is_refused(monkeypatch):
    with pytest.raises(ContainerdConfigError, match="internal error"):
        t.apply_edits("a = 1\n", [t.Set(("a",), 2)], {"a": 3})


def test_syntax_error_names_line_and_column_not_content():
    with pytest.raises(ContainerdConfigError) as err:
        t.loads('version = 2\npassword = "hunter2\n', "/etc/containerd/config.toml")
    assert err.value.extra["line"] == 2 and "line 2" in err.value.msg and "hunter2" not in err.value.msg


def test_insert_first_key_goes_after_the_leading_comments():
    assert t.insert_first_key("# licence\n\n[a]\nb = 1\n", "version", 3) == "# licence\n\nversion = 3\n\n[a]\nb = 1\n"
    assert t.insert_first_key("# only comments", "version", 2) == "# only comments\nversion = 2\n"


def test_rename_tables_keeps_comments_and_indentation():
    text = '# top\n[plugins.cri]  # the CRI\n  a = 1\n  [plugins.cri.sub]\n  b = 2\n'
    expected = {"plugins": {"io.containerd.grpc.v1.cri": {"a": 1, "sub": {"b": 2}}}}
    after = t.rename_tables(text, lambda p: p[:1] + ("io.containerd.grpc.v1.cri",) + p[2:] if p[:2] == ("plugins", "cri") else p,
                            expected, "by hand")
    assert after == '# top\n[plugins."io.containerd.grpc.v1.cri"]  # the CRI\n  a = 1\n  [plugins."io.containerd.grpc.v1.cri".sub]\n  b = 2\n'


SECRET_FILE = '''version = 2
# registry login
[plugins."io.containerd.grpc.v1.cri".registry.configs."reg.example".auth]
  username = "robot"
  password = "p\\u0040ss-word"
  auth = 'cm9ib3Q6cEBzcy13b3Jk'
[x]
  token = 7
  note = "the password is p@ss-word"
'''


def test_mask_values_masks_every_credential_however_it_is_spelled():
    data = tomllib.loads(SECRET_FILE)
    secrets = ["robot", "p@ss-word", "cm9ib3Q6cEBzcy13b3Jk", "7"]
    masked = t.mask_values(SECRET_FILE, data, lambda k: k.lower() in ("auth", "password", "token"), secrets)
    reread = tomllib.loads(masked)
    assert reread["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"]["reg.example"]["auth"] == {
        "username": t.MASK, "password": t.MASK, "auth": t.MASK}
    assert reread["x"]["token"] == t.MASK
    for secret in ("robot", "p@ss-word", "p\\u0040ss", "cm9ib3Q6cEBzcy13b3Jk"):
        assert secret not in masked
    assert "# registry login\n" in masked


def test_mask_values_reaches_into_arrays_of_inline_tables():
    text = 'a = [{password = "s3cr3t-value", user = "u"}]\nb = 1\n'
    masked = t.mask_values(text, tomllib.loads(text), lambda k: k == "password", ["s3cr3t-value"])
    assert tomllib.loads(masked) == {"a": [{"password": t.MASK, "user": "u"}], "b": 1}


def test_mask_values_gives_up_rather_than_show_a_secret():
    text = 'x = 1\npassword = "="\n'  # masking "=" everywhere would break the file: show nothing
    assert t.mask_values(text, tomllib.loads(text), lambda k: k == "password", ["="]) is None


def test_same_is_strict_about_types_and_treats_nan_as_equal():
    assert not t.same({"a": 1}, {"a": True}) and not t.same([1], [1.0])
    assert t.same({"a": float("nan")}, {"a": float("nan")}) and t.same({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]})


def test_tomlkit_is_used_through_its_public_api_only():
    import re

    source = Path(t.__file__).read_text()
    private = re.findall(r"\.(_t\b|_insert_at|_replace\b|_body|_map|body\b|value\.body)", source)
    assert private == [], "private tomlkit attributes used: %s" % private
    assert tomlkit.string("x", literal=True).as_string() == "'x'"
