# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real modprobe (Debian's kmod) never reads a kernel_modules input as one of its options.

A throwaway root holds a module tree (a minimal ELF object with a .modinfo section, indexed by the real
depmod) and a config file with an ``install`` rule that would create a marker file. modprobe runs with
``-d ROOT -n -v`` (dry run: it prints what it would do and loads nothing):

* negative control: an option word after the module name (``--config=ROOT/evil.conf``, no ``--``) is read
  as an option, and modprobe prints the install rule: the harness can see an option being parsed;
* property: for generated module names and parameter words (hostile ones included), whatever
  ``_kernel_modules`` accepts, placed on the command line exactly as the module does (``-- NAME WORDS``) and
  also without the ``--`` (the grammar alone), ends up in the ``insmod`` line as module parameters, and the
  install rule never shows.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import PROPERTY, Counter, hostile_word, mostly
from ansible_collections.kubeforge.cluster.plugins.module_utils import _kernel_modules as km
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

MODPROBE = shutil.which("modprobe") or next((p for p in ("/usr/sbin/modprobe", "/sbin/modprobe") if os.path.exists(p)), None)
DEPMOD = shutil.which("depmod") or next((p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.path.exists(p)), None)
pytestmark = [pytest.mark.real_binary,
              pytest.mark.skipif(not (MODPROBE and DEPMOD), reason="modprobe/depmod not installed (Debian package kmod)")]
NAME = "kubeforge_fake"
RELEASE = os.uname().release


def minimal_module(name):
    """An ELF64 relocatable object with .modinfo, .symtab, .strtab and .shstrtab: enough for depmod to index it."""
    modinfo = b"license=GPL\x00name=" + name.encode() + b"\x00"
    symtab = b"\x00" * 24  # the null symbol
    strtab = b"\x00"
    names = [b"", b".modinfo", b".symtab", b".strtab", b".shstrtab"]
    shstrtab = b"\x00".join(names) + b"\x00"
    offsets = [sum(len(n) + 1 for n in names[:i]) for i in range(len(names))]
    body = b""
    sections = []  # (name offset, type, flags, data, link, info, align, entsize)
    for index, (kind, flags, data, link, info, align, entsize) in enumerate(
            [(1, 2, modinfo, 0, 0, 1, 0), (2, 0, symtab, 3, 1, 8, 24), (3, 0, strtab, 0, 0, 1, 0), (3, 0, shstrtab, 0, 0, 1, 0)], 1):
        sections.append((offsets[index], kind, flags, 64 + len(body), len(data), link, info, align, entsize))
        body += data
    shoff = 64 + len(body)
    fields = (1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(sections) + 1, len(sections))  # REL, x86-64, no segments
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHIQQQIHHHHHH", *fields)
    table = b"\x00" * 64 + b"".join(struct.pack("<IIQQQQIIQQ", n, t, f, 0, o, s, lk, inf, al, es)
                                    for n, t, f, o, s, lk, inf, al, es in sections)
    return header + body + table


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("modprobe-root")
    kernel = base / "lib" / "modules" / RELEASE / "kernel"
    kernel.mkdir(parents=True)
    (kernel / (NAME + ".ko")).write_bytes(minimal_module(NAME))
    subprocess.run([DEPMOD, "-b", str(base), RELEASE], check=True, capture_output=True)
    (base / "conf").mkdir()
    (base / "conf" / "evil.conf").write_text("install %s touch %s\n" % (NAME, base / "marker"))
    return base


def dry_run(root, argv):
    """Run modprobe (argv without its program name) against ``root`` in dry-run mode."""
    proc = subprocess.run([MODPROBE, "-d", str(root)] + argv, capture_output=True, text=True, check=False,
                          env=dict(os.environ, LANGUAGE="C", LC_ALL="C"))
    return proc.returncode, proc.stdout + proc.stderr


def test_harness_sees_an_option_after_the_module_name(root):
    rc, out = dry_run(root, ["-n", "-v", NAME, "a=1", "--config=%s" % (root / "conf" / "evil.conf")])
    assert rc == 0 and out.startswith("install touch %s" % (root / "marker")), out
    rc, out = dry_run(root, ["-n", "-v", NAME, "a=1", "b=-2"])
    assert (rc, out) == (0, "insmod %s/lib/modules/%s/kernel/%s.ko a=1 b=-2\n" % (root, RELEASE, NAME))
    assert not (root / "marker").exists()


def test_no_accepted_params_word_is_ever_a_modprobe_option(root):
    counter = Counter("kernel_modules params through the real modprobe (kmod), each run with and without --")
    evil = "--config=%s" % (root / "conf" / "evil.conf")
    option_words = [evil, "-C", str(root / "conf" / "evil.conf"), "-d/", "--dirname=/", "-r", "--remove", "-a", "-i",
                    "--show-depends", "-q", "x=" + evil, "x=-C", "x=" + str(root), "--", "-"]
    words = st.lists(mostly(st.sampled_from(["a=1", "b=-2", "ids=1,2,3", "fw=a/b.bin", "e=", "x=y=z"]),
                            st.one_of(st.sampled_from(option_words), hostile_word), 2), max_size=4)

    @PROPERTY
    @given(params=st.one_of(words.map(" ".join), words))
    def prop(params):
        try:
            accepted = km.param_words("modules[0].params", params if isinstance(params, str) else " ".join(params))
        except InputError as exc:
            counter(True)
            assert str(exc).startswith("modules[0].params: ")
            return
        counter()
        expected = "insmod %s/lib/modules/%s/kernel/%s.ko %s\n" % (root, RELEASE, NAME, " ".join(accepted))
        as_the_module_runs_it = km.modprobe_argv(MODPROBE, NAME, accepted, dry_run=True)[1:]
        assert dry_run(root, as_the_module_runs_it) == (0, expected)
        without_end_of_options = ["-n", "-v", NAME] + accepted
        assert dry_run(root, without_end_of_options) == (0, expected)
        assert not (root / "marker").exists()

    prop()
    counter.report()


def test_no_accepted_module_name_is_ever_a_modprobe_option(root):
    counter = Counter("kernel_modules names through the real modprobe (kmod)")

    @PROPERTY
    @given(name=mostly(st.sampled_from([NAME, "kubeforge-fake", "br_netfilter", "x"]),
                       st.one_of(st.sampled_from(["-C", "--config=/x", "-a", "../x", "-"]), hostile_word), 2))
    def prop(name):
        try:
            argv = km.modprobe_argv(MODPROBE, name, dry_run=True)[1:]
        except InputError:
            counter(True)
            return
        counter()
        rc, out = dry_run(root, argv)
        if name.replace("-", "_") == NAME:
            assert (rc, out) == (0, "insmod %s/lib/modules/%s/kernel/%s.ko \n" % (root, RELEASE, NAME))
        else:
            assert rc == 1 and out.startswith("modprobe: FATAL: Module %s not found" % name), out
        assert "install" not in out and not (root / "marker").exists()

    prop()
    counter.report()
