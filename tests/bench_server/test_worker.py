"""Background work: importing the server builds no Celery app and reads no settings; the worker's
entry module builds the app on first access, with Celery's own retry options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench_server.kit.settings import Settings
from bench_server.tasks import TASKS, periodic_tasks

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, pkgutil, importlib
import celery
import bench_server.kit.settings as settings_module

built, settings_reads = [], []
real_init = celery.Celery.__init__
def counting_init(self, *args, **kwargs):
    built.append(args[:1])
    real_init(self, *args, **kwargs)
celery.Celery.__init__ = counting_init
real_get_settings = settings_module.get_settings
def counting_get_settings():
    settings_reads.append(1)
    return real_get_settings()
settings_module.get_settings = counting_get_settings

import bench_server, web
modules = sorted(
    m.name for pkg in (bench_server, web) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
)
for name in modules:
    importlib.import_module(name)
report = {"modules": modules, "built_on_import": len(built), "settings_on_import": len(settings_reads)}

import bench_server.worker as worker
app = worker.app
task = app.tasks["github.post_status"]
report.update(
    built_on_access=len(built),
    tasks=sorted(n for n in app.tasks if not n.startswith("celery.")),
    autoretry_for=[e.__name__ for e in task.autoretry_for],
    max_retries=task.max_retries,
    retry_backoff=task.retry_backoff,
    retry_jitter=task.retry_jitter,
    beat=sorted(e["task"] for e in app.conf.beat_schedule.values()),
    queue=app.conf.task_routes["github.post_status"]["queue"],
)
print(json.dumps(report))
"""


def test_importing_every_module_builds_nothing_and_the_worker_builds_on_access() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (REPO, REPO / "formats", REPO / "runners")),
        "BENCH_BROKER_URL": "redis://127.0.0.1:6379/13",
        "BENCH_TASK_MAX_RETRIES": "7",
        "BENCH_TASK_RETRY_BASE_S": "3",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert {
        "bench_server.worker",
        "bench_server.kit.outbox",
        "bench_server.jobs.service",
        "web.pages",
    } <= set(report["modules"])
    assert report["built_on_import"] == 0
    assert report["settings_on_import"] == 0
    assert report["built_on_access"] == 1
    assert report["tasks"] == sorted(TASKS)
    assert report["autoretry_for"] == ["TransientError"]
    assert (report["max_retries"], report["retry_backoff"], report["retry_jitter"]) == (7, 3.0, True)
    assert report["beat"] == sorted(p.task for p in periodic_tasks(Settings()))
    assert report["queue"] == "github"


def test_every_periodic_task_is_a_task_and_takes_only_the_context() -> None:
    for periodic in periodic_tasks(Settings()):
        assert periodic.task in TASKS
        assert periodic.every_s > 0
