# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubeforge lab: real Debian machines with systemd as PID 1, booted with systemd-nspawn.

``tools/lab.py`` is the command line; this package holds the parts, one concern a module:

- ``cli``          argument parsing and the ``status``/``ssh``/``instances``/``summary`` commands
- ``up``           ``up``: the order in which the parts below are called (create, grow, shrink)
- ``state``        the typed ``state.json`` (dataclasses, schema version, the one reader/writer)
- ``addressing``   lab id, kernel object names, subnets, addresses, machine names, inventory groups
- ``network``      bridge, ip_forward, NAT rules, per-machine netns and veth
- ``image``        the cached debootstrap base per distro and its apt sources
- ``machine``      overlay, personalisation, nspawn argv, boot supervisor, wait, stop
- ``cleanup``      what ``down`` removes: typed actions, the scan's filter, the plan (all pure)
- ``teardown``     the host scan, the executor of a plan, ``down`` and removing one machine
- ``inventory``    the Ansible inventory, /etc/hosts and molecule's instance config
- ``ssh``          the one place that builds ssh argv
- ``hostcmd``      running host commands, atomic writes, locks, mounts
- ``process``      pids and their start times
- ``paths``        where the lab keeps its files
- ``errors``       the exceptions every part raises
"""
