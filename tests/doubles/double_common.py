# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the test doubles share: the call log, option parsing, the version they stand in for, YAML and validation.

``BUILD`` is written by build.py into the zip application (``{"version": "1.37.0"}``).
"""

from __future__ import annotations

import json
import os
import pkgutil
import sys
import tempfile
import time
import zipfile

BUILD = {"version": "0.0.0"}
LOG_DIR = "/var/log/kubeforge-test-doubles"


def _archive():
    """The zip application this code runs from (build.py makes one per double)."""
    return getattr(globals().get("__loader__"), "archive", None)


def load_build():
    data = pkgutil.get_data(__name__, "build.json")
    if data:
        BUILD.update(json.loads(data))


def version_info(component):
    major, minor, patch = BUILD["version"].split(".")
    return {"major": major, "minor": minor, "gitVersion": "v" + BUILD["version"], "gitCommit": "test-double",
            "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "none (test double of %s)" % component,
            "compiler": "none", "platform": "linux/amd64"}


def option(args, *names):
    """The value of ``--name value`` / ``--name=value`` / ``-o value``; None when absent."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1:]
    return None


def fail(record, message, rc=1):
    record["error"] = message
    print(message, file=sys.stderr)
    return rc


def load_yaml_documents(path):
    try:
        import yaml
    except ImportError:
        raise ValueError("python3-yaml is not installed (the test double's package depends on it)") from None
    with open(path, encoding="utf-8") as handle:
        try:
            return [doc for doc in yaml.safe_load_all(handle) if doc is not None]
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None


def validate(documents):
    """Problems of the documents for this double's minor, from the collection's validator and schemas."""
    import _kubeadm_schema as schema

    minor = ".".join(BUILD["version"].split(".")[:2])
    with tempfile.TemporaryDirectory(prefix="kubeadm-double-") as directory:
        schema_dir = extract_schemas(directory)
        return [str(problem) for problem in schema.validate_documents(documents, minor, schema_dir)]


def extract_schemas(directory):
    """Extract the schema files from the zip application into ``directory``; their directory."""
    with zipfile.ZipFile(_archive()) as bundle:
        for name in bundle.namelist():
            if name.startswith("kubeadm_schemas/") and name.endswith(".json"):
                bundle.extract(name, directory)
    return os.path.join(directory, "kubeadm_schemas")


def log(component, record):
    path = os.environ.get("KUBEFORGE_DOUBLES_LOG") or os.path.join(LOG_DIR, component + ".log")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError as exc:
        print("%s test double: cannot record the call in %s: %s" % (component, path, exc), file=sys.stderr)


def dispatch(component, commands, argv):
    """Run the longest registered command path that ``argv`` starts with; log the call."""
    load_build()
    record = {"time": time.time(), "component": component, "argv": [component] + list(argv), "test_double": True}
    words = [arg for arg in argv if not arg.startswith("-")]
    handler, rest = None, list(argv)
    for length in range(len(words), 0, -1):
        if tuple(words[:length]) in commands:
            handler = commands[tuple(words[:length])]
            rest = [a for a in argv if a not in words[:length]]
            break
    if handler is None:
        rc = fail(record, "%s TEST DOUBLE (kubeforge.cluster tests): %r is not implemented; see tests/doubles/" % (
            component, " ".join(argv) or "(no command)"), rc=2)
    else:
        rc = handler(rest, record)
    record["rc"] = rc
    log(component, record)
    return rc
