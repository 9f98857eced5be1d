# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of kubectl (not Kubernetes): ``version --client [-o json]``. Calls are recorded."""

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
    info = common.version_info("kubectl")
    if common.option(args, "-o", "--output") == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
    else:
        print("Client Version: " + info["gitVersion"])
    return 0


def main(argv):
    return common.dispatch("kubectl", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
