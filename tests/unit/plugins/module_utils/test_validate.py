# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared input policy: each check refuses the wrong shape and names the option."""

from __future__ import annotations

import re

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _validate as v


@pytest.mark.parametrize("value", [["a", "b"], {"a": 1}, 3, True, None, b"x"])
def test_require_str_refuses_other_types_instead_of_stringifying(value):
    with pytest.raises(v.InputError, match=r"^sandbox_image: must be a string, got "):
        v.require_str("sandbox_image", value)


@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "a\rb", "\x1b[31m"])
def test_require_str_refuses_control_characters(value):
    with pytest.raises(v.InputError, match="control character"):
        v.require_str("opt", value)
    if "\n" in value:
        assert v.require_str("opt", value, multiline=True) == value


def test_bool_is_not_an_integer():
    with pytest.raises(v.InputError, match="must be an integer, got a bool"):
        v.require_int("timeout", True)
    assert v.require_int("port", 6443, 1, 65535) == 6443
    with pytest.raises(v.InputError, match="at most 65535"):
        v.require_int("port", 70000, 1, 65535)


def test_require_scalar_refuses_null_and_containers():
    for bad in (None, [], {}):
        with pytest.raises(v.InputError, match="^merge.a.b: must be a string, number or bool"):
            v.require_scalar("merge.a.b", bad)
    assert v.require_scalar("x", 0) == 0


@pytest.mark.parametrize("value", ["etc/x", "./x", "", "/etc/../x", "~/x"])
def test_absolute_path_refused(value):
    with pytest.raises(v.InputError, match="^path: "):
        v.absolute_path("path", value)


def test_absolute_path_normalised():
    assert v.absolute_path("path", "/etc//containerd/./config.toml") == "/etc/containerd/config.toml"


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "-x", "--config=/tmp/x", "a b", "a\tb", "a\nb"])
def test_safe_name_refused(value):
    with pytest.raises(v.InputError, match="^name: "):
        v.safe_name("name", value)


def test_safe_name_pattern():
    module_re = re.compile(r"^[A-Za-z0-9_]+$")
    assert v.safe_name("modules[0].name", "br_netfilter", "module name", module_re) == "br_netfilter"
    with pytest.raises(v.InputError, match="not a valid module name"):
        v.safe_name("modules[0].name", "br:netfilter", "module name", module_re)


@pytest.mark.parametrize("value", ["registry.example", "registry.example:5000", "10.0.0.1", "[fd00::1]:5000", "_default"])
def test_host_name_accepts(value):
    if value == "_default":
        with pytest.raises(v.InputError):
            v.host_name("registries key", value, allow_port=True)
    else:
        assert v.host_name("registries key", value, allow_port=True) == value


@pytest.mark.parametrize("value", ["a..b", "-a.example", "a_b.example", "a.example\n[x]", "x" * 64 + ".example", "h:99999"])
def test_host_name_refused(value):
    with pytest.raises(v.InputError, match="registries key"):
        v.host_name("registries key", value, allow_port=True)


def test_path_under_keeps_inside_root(tmp_path):
    root = str(tmp_path)
    assert v.path_under(root, ["net", "ipv4", "conf", "eth0.100", "forwarding"]) == root + "/net/ipv4/conf/eth0.100/forwarding"
    for parts in (["..", "etc"], ["net", ""], ["a/b"], ["."], ["x\x00y"]):
        with pytest.raises(v.InputError, match="cannot be a path component"):
            v.path_under(root, parts, option="settings")


def test_secrets_collected_and_masked():
    data = {"registries": {"r": {"auth": {"username": "u", "password": "p@ss"}, "Token": "t0k"}}, "list": [{"identitytoken": "id"}]}
    assert sorted(v.collect_secrets(data)) == ["id", "p@ss", "t0k", "u"]
    masked = v.mask_secrets(data)
    assert masked["registries"]["r"]["auth"] == v.MASK
    assert masked["registries"]["r"]["Token"] == v.MASK
    assert masked["list"][0]["identitytoken"] == v.MASK
    assert data["registries"]["r"]["auth"]["password"] == "p@ss"  # the input is not modified
    assert v.collect_secrets({"mine": "s"}, extra=["MINE"]) == ["s"]


def test_mask_text_covers_escaped_forms():
    text = 'password = "a\\"b"\nother = "a\\"b-not"\n'
    assert "a\\\"b" not in v.mask_text(text, ['a"b']).replace(v.MASK, "")


def test_sha256_checksum_forms():
    digest = "A" * 64
    assert v.sha256_checksum("crictl_checksum", "sha256:" + digest) == "a" * 64
    assert v.sha256_checksum("crictl_checksum", digest) == "a" * 64
    with pytest.raises(v.InputError, match=r"^crictl_checksum: only sha256 checksums are supported"):
        v.sha256_checksum("crictl_checksum", "md5:" + "a" * 32)
    with pytest.raises(v.InputError, match=r"^crictl_checksum: must be a sha256 checksum, sha256:<64 hex digits>, got 'sha256:abc'"):
        v.sha256_checksum("crictl_checksum", "sha256:abc")
    with pytest.raises(v.InputError, match="must be a string, got a list"):
        v.sha256_checksum("crictl_checksum", [digest])


def test_octal_mode_only_from_strings():
    assert v.octal_mode("mode", "0755") == 0o755
    assert v.octal_mode("mode", "644") == 0o644
    assert v.octal_mode("mode", "04755") == 0o4755
    with pytest.raises(v.InputError, match=r"^mode: must be an octal string such as '0755' \(quoted"):
        v.octal_mode("mode", 493)  # what YAML makes of an unquoted 0755
    for bad in ("0855", "u+x", "7", "077777"):
        with pytest.raises(v.InputError, match="mode"):
            v.octal_mode("mode", bad)


@pytest.mark.parametrize("value", ["https://example.invalid/crictl.tar.gz", "http://10.0.0.1:8080/a%20b", "https://user@host.invalid/x"])
def test_url_accepted(value):
    assert v.url("crictl_url", value) == value


@pytest.mark.parametrize("value, problem", [
    ("ftp://host/x", "must be a https or http URL"),
    ("/srv/x.tar.gz", "must be a https or http URL"),
    ("https:///x", "has no host"),
    ("https://host/a b", "must not contain whitespace"),
    ("https://host/a\nb", "control character"),
])
def test_url_refused(value, problem):
    with pytest.raises(v.InputError, match="^crictl_url: .*" + re.escape(problem)):
        v.url("crictl_url", value)


@pytest.mark.parametrize("value, expected", [(True, True), ("yes", True), (" False ", False), ("0", False), ("On", True)])
def test_require_boolean_accepts_what_ansible_bool_options_accept(value, expected):
    assert v.require_boolean("modules[0].required", value) is expected


@pytest.mark.parametrize("value, shown", [("maybe", "'maybe'"), (None, "null"), (1, "an integer"), (["yes"], "a list")])
def test_require_boolean_refuses_the_rest(value, shown):
    with pytest.raises(v.InputError, match="^modules\\[0\\].required: must be true or false, got %s$" % re.escape(shown)):
        v.require_boolean("modules[0].required", value)


def test_require_keys():
    assert v.require_keys("item", {"name": "x"}, ("name", "reason"), required=("name",)) == {"name": "x"}
    with pytest.raises(v.InputError, match="^item: has unknown keys nam; allowed: name, reason$"):
        v.require_keys("item", {"nam": "x"}, ("name", "reason"))
    with pytest.raises(v.InputError, match="^item: needs the keys name$"):
        v.require_keys("item", {"reason": "x"}, ("name", "reason"), required=("name",))


@pytest.mark.parametrize("value, problem", [
    ("kubeforge", "must end with .conf"), (".conf", "must not start with '.'"), ("a b.conf", "must not contain whitespace"),
    ("x/y.conf", "must not contain '/'"), ("-C.conf", "must not start with '-'"), ("é.conf", "may only contain"),
])
def test_file_name(value, problem):
    assert v.file_name("persist_file", "kubeforge.conf", suffixes=(".conf",)) == "kubeforge.conf"
    with pytest.raises(v.InputError, match="^persist_file: ") as caught:
        v.file_name("persist_file", value, suffixes=(".conf",))
    assert problem in str(caught.value)


@pytest.mark.parametrize("secret", ['a\nbcdefgh', 'tab\there', 'pässwörd', 'esc\x1bape', 'q"uo\\te'])
def test_mask_text_covers_json_escapes_of_control_and_non_ascii(secret):
    import json

    for ascii_only in (False, True):
        text = json.dumps({"password": secret, "other": "x"}, ensure_ascii=ascii_only)
        masked = v.mask_text(text, [secret])
        assert json.loads(masked)["password"] == v.MASK


def test_untagged_turns_subclasses_into_plain_values_and_keeps_none():
    class Tagged(str):
        pass

    class TaggedDict(dict):
        pass

    value = v.untagged(TaggedDict({Tagged("a"): [Tagged("x"), 1, 2.5, True, None]}))
    assert value == {"a": ["x", 1, 2.5, True, None]}
    key = next(iter(value))
    assert not isinstance(key, Tagged) and not isinstance(value, TaggedDict) and not isinstance(value["a"][0], Tagged)


def test_plain_data_returns_plain_values_and_names_the_bad_item():
    class Tagged(str):  # Ansible hands templated strings over as str subclasses
        pass

    data = v.plain_data("extra", {"gc": [{"keep": Tagged("10GB"), "all": True, "n": 3, "f": 0.5}]})
    assert data == {"gc": [{"keep": "10GB", "all": True, "n": 3, "f": 0.5}]}
    assert not isinstance(data["gc"][0]["keep"], Tagged) and isinstance(data["gc"][0]["all"], bool)
    with pytest.raises(v.InputError, match=r"^extra\.gc\[1\]: must be a string, number, bool, list or dict, got null$"):
        v.plain_data("extra", {"gc": ["ok", None]})
    with pytest.raises(v.InputError, match=r"^extra\.key: .*control character"):
        v.plain_data("extra", {"key": "a\x00b"})
