# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of the lab; the command line prints their message and exits 1."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something failed; the message says what and how to clean up."""


class UsageError(LabError):
    """A request that cannot be carried out as asked; nothing was changed."""


class StateError(UsageError):
    """The lab's state file cannot be used (unreadable, or written by a newer lab tool)."""
