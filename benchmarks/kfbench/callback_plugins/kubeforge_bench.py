# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What benchmarks/converge.py needs from one ansible-playbook run, written as JSON at the end.

Per host: the recap (ok, changed, skipped, failures, unreachable, ...). Per task: how often it ran,
with which outcome, and how long it took, in two ways: ``wall`` is the time from this task's start
to the next task's start, as ``ansible.posix.profile_tasks`` reports it (meaningful with the linear
strategy), ``host_seconds`` adds up, over the hosts, the time from the strategy queuing the task for
a host to its result (meaningful with every strategy). Nothing is printed.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: kubeforge_bench
type: aggregate
short_description: per-host recap and per-task timings for benchmarks/converge.py
description:
  - Writes the recap of every host and the time of every task to the JSON file named by the environment
    variable E(KUBEFORGE_BENCH_RESULT) when the playbook ends. Prints nothing.
requirements:
  - enable in callbacks_enabled
"""

OUTCOMES = ("ok", "changed", "skipped", "failed", "unreachable")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kubeforge_bench"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("KUBEFORGE_BENCH_RESULT")
        self._tasks = {}        # task uuid -> record
        self._current = None    # the task whose wall time is running (profile_tasks style)
        self._started = {}      # (task uuid, host) -> monotonic start
        self._first = None
        self._play_start = time.monotonic()

    def _task_record(self, task):
        record = self._tasks.get(task._uuid)
        if record is None:
            role = task._role.get_name() if task._role else ""
            record = {"name": task.get_name(), "role": role, "path": task.get_path() or "", "action": task.action,
                      "wall": 0.0, "host_seconds": 0.0, "hosts": 0}
            record.update((outcome, 0) for outcome in OUTCOMES)
            self._tasks[task._uuid] = record
        return record

    def _close_current(self):
        if self._current is not None:
            record, started = self._current
            record["wall"] += time.monotonic() - started
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close_current()
        self._current = (self._task_record(task), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_start(self, host, task):
        self._started[(task._uuid, host.get_name())] = time.monotonic()

    def _record(self, result, outcome):
        record = self._task_record(result._task)
        started = self._started.pop((result._task._uuid, result._host.get_name()), None)
        if started is not None:
            record["host_seconds"] += time.monotonic() - started
        record["hosts"] += 1
        if outcome == "ok" and result._result.get("changed"):
            outcome = "changed"
        record[outcome] += 1

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._close_current()
        if not self._path:
            return
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        data = {"recap": recap, "tasks": list(self._tasks.values()), "playbook_seconds": time.monotonic() - self._play_start}
        with open(self._path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(self._path + ".tmp", self._path)
