# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of kubeadm (not Kubernetes): the kubeadm commands the collection's tests need, nothing more.

Built by tests/doubles/build.py into a self-contained executable (a Python zip application that carries
the collection's schema validator and schemas) and packaged as ``kubeadm`` in a clearly named test .deb.
Every call is recorded as one JSON line in ``$KUBEFORGE_DOUBLES_LOG`` (default
/var/log/kubeforge-test-doubles/kubeadm.log): argv, exit code, and what the command found.

Implemented: ``version [-o short|json|yaml]``; ``config validate --config FILE`` - each YAML document is
checked with the project's validator (plugins/module_utils/_kubeadm_schema.py) against the schemas of this
double's Kubernetes minor, as kubeadm's strict decoder would. Other commands exit 2 saying so; kubeadm part 2
adds ``init``/``join`` by adding entries to ``COMMANDS``.
"""

from __future__ import annotations

import json
import sys

import double_common as common

COMMANDS = {}


def command(path):
    def register(function):
        COMMANDS[tuple(path.split())] = function
        return function
    return register


@command("version")
def version(args, record):
    output = common.option(args, "-o", "--output") or ""
    info = common.version_info("kubeadm")
    if output == "short":
        print(info["gitVersion"])
    elif output == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
    elif output == "yaml":
        print("clientVersion:\n" + "".join("  %s: %s\n" % item for item in info.items()), end="")
    elif output:
        return common.fail(record, "error: invalid output format: %s" % output)
    else:
        print("kubeadm version: &version.Info{%s}" % ", ".join('%s:"%s"' % (k[0].upper() + k[1:], v) for k, v in info.items()))
    return 0


@command("config validate")
def config_validate(args, record):
    path = common.option(args, "--config")
    if not path:
        return common.fail(record, "error: the --config flag is mandatory")
    try:
        documents = common.load_yaml_documents(path)
    except (OSError, ValueError) as exc:
        return common.fail(record, "error: cannot read %s: %s" % (path, exc))
    record["documents"] = [d.get("kind") if isinstance(d, dict) else None for d in documents]
    problems = common.validate(documents)
    record["problems"] = problems
    if problems:
        return common.fail(record, "\n".join(problems))
    return 0


def main(argv):
    return common.dispatch("kubeadm", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
