# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of the shared input policy (hypothesis): paths built from input stay under their root, names
never become options or paths, and generated secrets never survive masking (data, JSON or TOML-like text)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import PROPERTY, Counter, any_value, hostile_word
from ansible_collections.kubeforge.cluster.plugins.module_utils import _validate as v

secret_text = st.text(min_size=8, max_size=24).filter(lambda s: "*" not in s and s.strip() == s and len(set(s)) > 3)


def test_path_under_never_leaves_its_root():
    counter = Counter("_validate.path_under: generated components")

    @PROPERTY
    @given(parts=st.lists(hostile_word, min_size=1, max_size=5))
    def prop(parts):
        root = "/srv/root"
        try:
            path = v.path_under(root, parts, option="settings")
        except v.InputError as exc:
            counter(True)
            assert str(exc).startswith("settings: ")
            return
        counter()
        assert path.startswith(root + "/") and os.path.normpath(path) == path
        assert path[len(root) + 1:].split("/") == parts

    prop()
    counter.report()


def test_names_never_become_options_or_paths():
    counter = Counter("_validate.safe_name/file_name/not_option: generated names")

    @PROPERTY
    @given(value=st.one_of(hostile_word, any_value))
    def prop(value):
        checks = (("name", lambda: v.safe_name("name", value)),
                  ("persist_file", lambda: v.file_name("persist_file", value, suffixes=(".conf",))),
                  ("arg", lambda: v.not_option("arg", value)))
        for option, check in checks:
            try:
                result = check()
            except v.InputError as exc:
                counter(True)
                assert str(exc).startswith(option + ": ")
                continue
            counter()
            assert isinstance(result, str) and result and not result.startswith("-")
            if option != "arg":  # a name: one path component, never a path
                assert "/" not in result and result not in (".", "..") and not any(c.isspace() for c in result)

    prop()
    counter.report()


@pytest.mark.parametrize("render", ["json", "json-ascii", "toml"])
def test_generated_secrets_never_survive_masking(render):
    counter = Counter("_validate.mask_secrets/mask_text: generated secrets rendered as %s" % render)
    secret_keys = st.sampled_from(["password", "auth", "Token", "identitytoken", "secret", "private_key"])
    plain_keys = st.sampled_from(["host", "username_hint", "mirror", "x"])

    @PROPERTY
    @given(data=st.recursive(
        st.dictionaries(st.one_of(secret_keys, plain_keys), st.one_of(secret_text, st.integers(), st.booleans()), max_size=3),
        lambda children: st.dictionaries(st.one_of(secret_keys, plain_keys), children, max_size=3), max_leaves=8))
    def prop(data):
        counter()
        secrets = v.collect_secrets(data)
        masked = v.mask_secrets(data)
        assert set(v.collect_secrets(masked)) <= {v.MASK}
        if render == "toml":
            text = "".join('%s = "%s"\n' % (key, str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
                           for key, value in _leaves(data))
        else:
            text = json.dumps(data, ensure_ascii=(render == "json-ascii"))
        shown = v.mask_text(text, secrets)
        for secret in secrets:
            if len(secret) >= 8:
                assert secret not in shown and json.dumps(secret)[1:-1] not in shown, (secret, shown)

    prop()
    counter.report()


def _leaves(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value
