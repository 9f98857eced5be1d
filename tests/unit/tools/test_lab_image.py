# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/image.py: the machines' apt sources, made from the host's Debian entries."""

from __future__ import annotations

import pytest
from kflab import image
from kflab.errors import LabError

HOST_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
THIRD_PARTY_SOURCES = """\
Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/nodesource.gpg
"""


def test_apt_sources_keep_debian_entries_and_swap_codename():
    one_line = ("deb https://cloud.example/apt cloud-sdk-bookworm main\n"
                "deb [arch=amd64] http://old.example/debian bookworm main contrib\n")
    entries = image.parse_apt_sources([HOST_SOURCES, THIRD_PARTY_SOURCES], one_line)
    assert [e["uri"] for e in entries] == ["http://mirror.example/debian", "http://mirror.example/debian-security",
                                           "http://old.example/debian"]
    text = image.render_apt_sources(entries, "bookworm", "trixie")
    assert "Suites: trixie trixie-updates\n" in text
    assert "Suites: trixie-security\n" in text
    assert "Components: main contrib\n" in text
    assert "bookworm" not in text
    assert "vendor.example" not in text and "cloud.example" not in text
    assert text.count("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg") == 3


def test_apt_sources_same_distro_unchanged_and_disabled_skipped():
    disabled = HOST_SOURCES.replace("Types: deb\nURIs: http://mirror.example/debian-security",
                                    "Types: deb\nEnabled: no\nURIs: http://mirror.example/debian-security")
    entries = image.parse_apt_sources([disabled], "")
    assert image.render_apt_sources(entries, "bookworm", "bookworm") == (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def test_apt_sources_without_debian_entry_is_an_error():
    with pytest.raises(LabError, match="no Debian archive entry"):
        image.render_apt_sources(image.parse_apt_sources([THIRD_PARTY_SOURCES], ""), "bookworm", "bookworm")
