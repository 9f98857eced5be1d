# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parts of benchmarks/converge.py: measure (one run), launch (the subreaper between us and
ansible-playbook), procfs (/proc readings), labs (bench-<N> labs), report (table, profile, PNG),
modules (in-process module timings), callback_plugins/kubeforge_bench.py, ssh-count."""
