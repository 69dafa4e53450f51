"""What a benchmark ran on: the machine, the versions of everything measured, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench.nginx import nginx_version
from tests.support.postgrest import POSTGREST_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
GIT_STATUS = ("git", "status", "--porcelain", "--untracked-files=no")


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    memory: str
    python: str
    kernel: str
    versions: str


def machine(*, postgres_version: str, wrk_version: str, nginx: str | None) -> Machine:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = ", ".join(
        [
            f"PostgREST {POSTGREST_VERSION}",
            f"PostgreSQL {postgres_version}",
            f"Granian {version('granian')}",
            f"Litestar {version('litestar')}",
            f"aiohttp {version('aiohttp')}",
            wrk_version,
            f"nginx {nginx_version(nginx)}" if nginx else "nginx not installed",
        ]
    )
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=model,
        memory=memory,
        python=platform.python_version(),
        kernel=platform.release(),
        versions=versions,
    )


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        ).stdout.strip()
        # The report and plot of an earlier run are not the code being measured.
        dirty = subprocess.run(  # noqa: S603 - git with fixed arguments
            [*GIT_STATUS, "--", ".", ":!docs/benchmarks.md", ":!docs/benchmarks.png"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head
