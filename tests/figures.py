# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figures that tests measure (property example counts, worst probe times), printed in pytest's terminal
summary by tests/conftest.py, so they show without ``-s``."""

from __future__ import annotations

FIGURES = {}


def record(name, text):
    FIGURES[name] = text
