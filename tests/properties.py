# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared parts of the property-based tests (hypothesis): settings, an audit of the files a module touches,
hostile text strategies and the example counter printed in pytest's terminal summary.

Set ``KUBEFORGE_PROPERTY_EXAMPLES`` to run more (or fewer) examples per property, and
``KUBEFORGE_PROPERTY_RANDOM=1`` for fresh random examples instead of the reproducible derandomized ones CI uses.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from figures import record
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("KUBEFORGE_PROPERTY_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    derandomize=os.environ.get("KUBEFORGE_PROPERTY_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Characters that break naive path, option and file-format handling.
HOSTILE_CHARS = "./-_=*?# \t\n\r\x00\\\"'$;:,@+~aZ9é"
hostile_text = st.text(alphabet=HOSTILE_CHARS, max_size=24)
HOSTILE_WORDS = ["..", ".", "", "/", "//", "-", "--", "-C", "--config=/tmp/x.conf", "/etc/passwd", "../../etc",
                 "a\nb", "x\x00y", "*", " ", "é", "a b", "net/../..", "-v", "\\", '"']
hostile_word = st.one_of(st.sampled_from(HOSTILE_WORDS), hostile_text)
# Any value a YAML or templated option can hold.
any_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=False, allow_infinity=False),
              hostile_word),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(hostile_word, children, max_size=3)),
    max_leaves=6,
)


class Counter:
    """Counts the examples a property ran; ``report`` puts the count in the terminal summary."""

    def __init__(self, name):
        self.name = name
        self.examples = 0
        self.failures = 0

    def __call__(self, failed=False):
        self.examples += 1
        self.failures += bool(failed)

    def report(self):
        record("property %s" % self.name, "%d examples (%d of them refused or failed, as the property expects)"
               % (self.examples, self.failures))


_AUDITED = ("socket.connect", "open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.replace", "os.mkdir", "os.chmod",
            "os.chown", "os.symlink", "os.link", "os.truncate", "os.utime", "shutil.copyfile", "shutil.rmtree")
_RECORDING = []
_LOCK = threading.Lock()


def _hook(event, args):
    if not _RECORDING or event not in _AUDITED:
        return
    path = args[1] if event == "socket.connect" else args[0]
    if not isinstance(path, (str, bytes, int)):  # a socket address that is not a unix path
        return
    if isinstance(path, int):  # an open file descriptor, already accounted for when it was opened
        return
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    with _LOCK:
        for events in _RECORDING:
            events.append((event, os.path.abspath(str(path))))


sys.addaudithook(_hook)
_CODE_ROOTS = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(__file__)))})


@contextlib.contextmanager
def audit():
    """Record every file operation (open, listdir, rename, chmod, ...) of the code run inside; yields the list."""
    events = []
    _RECORDING.append(events)
    try:
        yield events
    finally:
        _RECORDING.remove(events)


def outside(events, root):
    """Events on paths that are neither under ``root`` nor Python code being imported."""
    root = os.path.realpath(root)
    bad = []
    for event, path in events:
        real = os.path.realpath(path)
        if real == root or real.startswith(root + os.sep):
            continue
        if event == "open" and real.startswith(_CODE_ROOTS) and real.endswith((".py", ".pyc", ".so")):
            continue
        bad.append((event, path))
    return bad


def throwaway_root(prefix):
    """A temporary directory, in memory (/dev/shm) where there is one: fsync costs nothing there."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix=prefix, dir="/dev/shm" if os.path.isdir("/dev/shm") else None)


def mostly(valid, hostile, ratio=3):
    """``valid`` ``ratio`` times out of ``ratio + 1``, else ``hostile``: properties see both success and refusal."""
    return st.sampled_from([True] * ratio + [False]).flatmap(lambda ok: valid if ok else hostile)


def tree_snapshot(root):
    """``{relative path: bytes or link target}`` of every file under ``root``, to prove nothing changed."""
    snapshot = {}
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                snapshot[relative] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    snapshot[relative] = handle.read()
    return snapshot
