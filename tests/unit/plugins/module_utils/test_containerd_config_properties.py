# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties of containerd_config over generated input (hypothesis), the whole task each time.

Each example runs the controller's ``run()`` with the real node-side helper module in-process
(tests/containerd_config_harness.py) against a throwaway root, with a stand-in containerd that accepts,
rejects or cannot run. Every file operation of the node side is recorded with a Python audit hook.
Invariants, whatever the input:

- the node side writes, renames, removes or creates nothing but the managed file and its backup and
  temporary files in the file's own directory (and the module's own temp dir); it runs nothing but containerd;
- nothing else under the throwaway root changes;
- after any failure the managed file is byte-identical (or still absent) and no temporary file is left;
- no generated credential appears in any result, diff, warning or error;
- a failure caused by an option names that option.

The number of examples each property ran is printed (and recorded as a junit property).
"""

from __future__ import annotations

import json
import os
import string
import sys
import tempfile
from pathlib import Path

import pytest
import tomllib
from containerd_config_harness import FIXTURES, LocalNode, fake_containerd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_schema import ContainerdConfigError
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_task import run

SETTINGS = dict(deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SECRET_KEYS = ["password", "auth", "identitytoken", "token", "Password", "registrytoken", "api_key"]  # api_key via secret_keys
C17 = "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1"

# --------------------------------------------------------------------------- recording the node's file operations

_RECORD = []
_RECORDING = [False]
_WRITE_EVENTS = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.chmod", "os.chown", "os.symlink", "os.truncate", "os.utime",
                 "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.move", "shutil.rmtree"}


def _audit(event, args):
    if not _RECORDING[0]:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, (str, bytes)):
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            _RECORD.append(("write" if writes else "read", os.fsdecode(path)))
    elif event in _WRITE_EVENTS:
        for arg in args[:2]:
            if isinstance(arg, (str, bytes)):
                _RECORD.append(("write", os.fsdecode(arg)))
    elif event == "subprocess.Popen":
        _RECORD.append(("exec", [os.fsdecode(a) for a in args[1]]))


sys.addaudithook(_audit)


class AuditedNode(LocalNode):
    def _execute(self, args):
        _RECORDING[0] = True
        try:
            return super()._execute(args)
        finally:
            _RECORDING[0] = False


def check_operations(conf, binary):
    """Every recorded write is the managed file, its backup/temp files, or the module's own temp dir; only containerd
    runs (and lsattr on those files, which Ansible's atomic_move and backup_local use to keep file attributes)."""
    real = Path(os.path.realpath(conf)) if os.path.lexists(conf) and os.path.exists(conf) else Path(conf)
    directory, name = str(real.parent), real.name

    def own(path):
        base = os.path.basename(path)
        return path == directory or (os.path.dirname(path) == directory and (
            base == name or base.startswith("." + name + ".") or (base.startswith(name + ".") and base.endswith("~"))))

    for kind, path in _RECORD:
        if kind == "exec":
            assert path[0] == binary or (os.path.basename(path[0]) == "lsattr" and own(path[-1])), "ran %s" % path
            continue
        path = os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)
        module_tmp = "/ansible-moduletmp-" in path
        if kind == "write":
            assert own(path) or module_tmp, "wrote %s" % path
        else:
            assert own(path) or module_tmp or path.startswith((sys.prefix, sys.base_prefix, "/proc/", "/dev/", "/etc/", "/usr/")) \
                or path.endswith((".py", ".pyc", ".so")), "read %s" % path


def snapshot(root, skip):
    out = {}
    for base, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.join(base, entry)
            if path.startswith(skip):
                continue
            if os.path.islink(path):
                out[path] = os.readlink(path)
            else:
                out[path] = None if os.path.isdir(path) else Path(path).read_bytes()
    return out


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def report(request, capsys, name, count, outcomes=None):
    """One line on the terminal whatever the capture setting, and a junit property."""
    request.node.user_properties.append(("hypothesis_examples", count))
    detail = " (%s)" % ", ".join("%s %d" % item for item in sorted(outcomes.items())) if outcomes else ""
    with capsys.disabled():
        print("\nhypothesis: %s ran %d examples%s" % (name, count, detail))


# --------------------------------------------------------------------------- strategies

SAFE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_./:@+=,'\"\\", max_size=12)
KEYS = st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=8)
SECRET = st.text(alphabet=string.ascii_letters + string.digits + "-_./:@+=!'\"\\ ", min_size=4, max_size=14).map(lambda s: "S3cr3t" + s)
SCALAR = st.one_of(SAFE_TEXT, st.integers(-2 ** 63, 2 ** 63 - 1), st.booleans(), st.floats(allow_nan=False, allow_infinity=False, width=32))


@st.composite
def tree(draw, depth=0):
    """A nested dict of TOML values; values under credential keys are generated secrets (recorded in ``.secrets``)."""
    out = {}
    for _entry in range(draw(st.integers(0 if depth else 1, 3))):
        if draw(st.integers(0, 4)) == 0:
            key = draw(st.sampled_from(SECRET_KEYS))
            if key == "auth" and draw(st.booleans()):
                out[key] = {"username": draw(SECRET), "password": draw(SECRET)}
            else:
                out[key] = draw(SECRET)
            continue
        key = draw(KEYS)
        choice = draw(st.integers(0, 5))
        if choice == 0 and depth < 3:
            out[key] = draw(tree(depth + 1))
        elif choice == 1:
            out[key] = draw(st.lists(SCALAR.filter(lambda v: not isinstance(v, bool)) | SAFE_TEXT, max_size=3))
        else:
            out[key] = draw(SCALAR)
    return out


def secrets_in(value, under=False):
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += secrets_in(item, under or key.lower() in {k.lower() for k in SECRET_KEYS})
    elif isinstance(value, list):
        for item in value:
            found += secrets_in(item, under)
    elif under and isinstance(value, str) and value.startswith("S3cr3t"):
        found.append(value)
    return found


def toml_string(value):
    return json.dumps(value)  # a JSON string of printable ASCII is a valid TOML basic string


V2 = '''# keep me
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
'''
BASES = ["missing", "empty", "comments", "v2", "v2-auth", "v2-default", "v3-default", "docker-default", "broken", "symlink", "dangling"]


@st.composite
def task_input(draw):
    base = draw(st.sampled_from(BASES))
    file_secret = draw(SECRET)
    params = {}
    if draw(st.booleans()):
        params["merge"] = {"x-prop": draw(tree())} if draw(st.integers(0, 3)) else draw(tree())
    if draw(st.booleans()):
        host = draw(st.sampled_from(["reg.example", "private.example:5000"]))
        params.setdefault("merge", {})["plugins"] = {"io.containerd.grpc.v1.cri": {"registry": {"configs": {host: {"auth": {
            "username": draw(SECRET), "password": draw(SECRET), "identitytoken": draw(SECRET)}}}}}}
    if draw(st.booleans()):
        params["sandbox_image"] = draw(st.one_of(st.just("example.org/pause:9"), SAFE_TEXT.filter(bool)))
    if draw(st.integers(0, 3)) == 0:
        params["systemd_cgroup"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        params["backup"] = True
    if draw(st.integers(0, 5)) == 0:
        params["disable_cri"] = True
    params["secret_keys"] = ["api_key"]
    containerd = draw(st.sampled_from(["ok", "ok", "ok", "reject", "broken", "missing"]))
    return base, file_secret, params, containerd, draw(st.booleans()), draw(st.booleans())


def make_base(root, base, file_secret):
    conf = root / "etc" / "containerd" / "config.toml"
    conf.parent.mkdir(parents=True)
    texts = {
        "empty": "", "comments": "# nothing here yet\n", "v2": V2, "broken": V2 + "[plugins\n",
        "v2-auth": V2 + '[plugins."io.containerd.grpc.v1.cri".registry.configs."old.example".auth]\n  password = %s\n' % toml_string(file_secret),
        "v2-default": (FIXTURES / "v2-default-1.7.toml").read_text(), "v3-default": (FIXTURES / "v3-default-2.1.toml").read_text(),
        "docker-default": (FIXTURES / "docker-default.toml").read_text(),
    }
    if base in texts:
        conf.write_text(texts[base])
    elif base == "symlink":
        (root / "real.toml").write_text(V2)
        conf.symlink_to(root / "real.toml")
    elif base == "dangling":
        conf.symlink_to(root / "nowhere.toml")
    return conf


# --------------------------------------------------------------------------- properties


def test_any_task_touches_only_its_file_and_shows_no_secret(request, capsys):
    count, outcomes = [0], {}

    @settings(max_examples=120, **SETTINGS)
    @given(task_input())
    def prop(generated):
        base, file_secret, params, containerd, check_mode, diff = generated
        count[0] += 1
        with tempfile.TemporaryDirectory(prefix="kf-prop-") as tmp:
            root = Path(tmp) / "root"
            conf = make_base(root, base, file_secret)
            version = C17 if base in ("v2", "v2-auth", "v2-default", "broken", "symlink") else None
            settings_ = {"dump_rc": 1, "dump_stderr": "level=fatal msg=%s\n" % file_secret} if containerd == "reject" else {}
            binary = fake_containerd(Path(tmp) / "bin", version=version, **({"version_rc": 2} if containerd == "broken" else settings_))
            if containerd == "missing":
                binary = str(Path(tmp) / "bin" / "absent")
            secrets = secrets_in(params) + ([file_secret] if base == "v2-auth" else [])
            target = conf.resolve() if conf.is_symlink() and conf.exists() else conf
            before = target.read_bytes() if target.exists() else None
            outside = snapshot(root, str(conf.parent))
            node = AuditedNode(check_mode=check_mode)
            _RECORD.clear()
            try:
                result = run(dict(params, path=str(conf), containerd_path=binary), node, check_mode=check_mode, diff=diff)
                shown, failed = result, False
            except ContainerdConfigError as exc:
                shown, failed = {"msg": exc.msg, **exc.extra}, True
            check_operations(conf, binary)
            outcome = "failed" if failed else ("changed" if result["changed"] else "unchanged")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            for text in strings(shown):
                for secret in secrets:
                    assert secret not in text, "a credential is shown: %r" % text
            assert snapshot(root, str(conf.parent)) == outside or base == "symlink"
            leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith("." + target.name + ".")]
            assert leftovers == []
            if failed:
                assert shown["msg"]
                assert (target.read_bytes() if target.exists() else None) == before, "a failed task changed the file"
                if "option" in shown:
                    assert shown["msg"].startswith(shown["option"])
            elif check_mode or not result["changed"]:
                assert (target.read_bytes() if target.exists() else None) == before
            else:
                written = target.read_text()
                tomllib.loads(written)
                for secret in secrets_in(params):
                    assert secret.replace("\\", "\\\\").replace('"', '\\"') in written or secret in written
                again = run(dict(params, path=str(conf), containerd_path=binary), AuditedNode(), diff=diff)
                assert again["changed"] is False and target.read_text() == written, "a second run changes nothing"
                outcomes["then unchanged"] = outcomes.get("then unchanged", 0) + 1
            if failed and os.environ.get("KF_PROP_DEBUG"):
                print("FAILED", base, containerd, shown["msg"][:150])

    prop()
    report(request, capsys, "test_any_task_touches_only_its_file_and_shows_no_secret", count[0], outcomes)


BAD_VALUES = {
    "path": st.one_of(st.just("relative/config.toml"), st.just("/etc/../x.toml"), st.just(""), st.lists(SAFE_TEXT, max_size=2),
                      SAFE_TEXT.filter(lambda s: not s.startswith("/"))),
    "sandbox_image": st.one_of(st.lists(SECRET, min_size=1, max_size=2), st.dictionaries(KEYS, SECRET, min_size=1, max_size=2),
                               st.integers(), st.just(""), st.just("a\x00b")),
    "registry_config_path": st.one_of(SAFE_TEXT.filter(lambda s: not s.startswith("/")), st.lists(SAFE_TEXT, min_size=1)),
    "default_runtime": st.one_of(st.integers(), st.lists(SAFE_TEXT, min_size=1), st.booleans()),
    "containerd_path": st.one_of(st.just("-v"), st.just(""), st.just("bin/containerd"), st.just("/usr/../bin/containerd"), st.integers()),
    "runtimes": st.one_of(st.lists(SAFE_TEXT, min_size=1), st.dictionaries(KEYS, st.one_of(SAFE_TEXT, st.integers()), min_size=1, max_size=2),
                          st.dictionaries(KEYS, st.dictionaries(st.just("runtime_type"), st.integers(), min_size=1), min_size=1, max_size=2)),
    "merge": st.one_of(st.lists(SAFE_TEXT, min_size=1), st.dictionaries(KEYS, st.none(), min_size=1, max_size=2),
                       st.dictionaries(KEYS, st.dictionaries(st.just("password"), st.lists(SECRET.map(str.encode), min_size=1), min_size=1), min_size=1),
                       st.dictionaries(st.integers(0, 9), SECRET, min_size=1, max_size=1)),
    "secret_keys": st.one_of(SAFE_TEXT.filter(bool), st.lists(st.integers(), min_size=1)),
    "disable_cri": st.one_of(SAFE_TEXT, st.integers(), st.lists(st.booleans(), min_size=1)),
}


def test_bad_values_fail_naming_the_option_before_the_node_is_asked(request, capsys):
    count = [0]

    @settings(max_examples=200, **SETTINGS)
    @given(st.sampled_from(sorted(BAD_VALUES)).flatmap(lambda name: st.tuples(st.just(name), BAD_VALUES[name])))
    def prop(generated):
        option, value = generated
        count[0] += 1
        node = AuditedNode()
        params = {"path": "/nonexistent/kubeforge/config.toml", option: value}
        with pytest.raises(ContainerdConfigError) as err:
            run(params, node)
        assert err.value.extra["option"].split(".")[0].split("[")[0].split(" ")[0] == option
        assert err.value.msg.startswith(err.value.extra["option"])
        assert node.calls == [], "nothing was read or run"
        for secret in [s for s in strings(value) if isinstance(s, str) and s.startswith("S3cr3t")]:
            assert secret not in err.value.msg

    prop()
    report(request, capsys, "test_bad_values_fail_naming_the_option_before_the_node_is_asked", count[0])
