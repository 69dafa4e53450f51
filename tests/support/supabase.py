"""The real ``@supabase/supabase-js``, pinned by tests/support/supabase_js/package-lock.json,
and a way to run a script of ours with it that prints one JSON document."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.npm import NpmPackageMissing, PinnedPackage

SOURCE = Path(__file__).resolve().parent / "supabase_js"
SUPABASE_JS = PinnedPackage(
    name="@supabase/supabase-js",
    version="2.105.0",
    integrity=(
        "sha512-UUmh6KpStf2RdKpRUmzj0cPl6OXlo1hkRTNHdFHozbiJv2MIxR/7eWGKHAO8OgnaZt0gv52k7NL/"
        "bZXgPQbw/A=="
    ),
    source=SOURCE,
    purpose="The supabase-js compatibility tests",
)


def run_supabase_script(script: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    """Run ``tests/support/supabase_js/<script>`` with node; its stdout is one JSON document."""
    try:
        installed = SUPABASE_JS.installed()
    except NpmPackageMissing as exc:
        # A missing prerequisite fails the test with what to install, never a skip.
        pytest.fail(str(exc), pytrace=False)
    result = subprocess.run(
        ["node", str(SOURCE / script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # The script stays in the repository; its require() finds the installed packages here.
        env={**os.environ, **env, "NODE_PATH": str(installed / "node_modules")},
    )
    assert result.returncode == 0, f"node {script} failed:\n{result.stdout}\n{result.stderr}"
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return document
