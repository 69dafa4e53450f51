"""The README's Quick start is the contract with a new user and with CI; keep them in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```\w*\n(.*?)```", section, re.S)
    assert block is not None, "the Quick start section has no fenced block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_holds_exactly_a_run_and_a_test_command() -> None:
    commands = quick_start_commands()

    assert len(commands) == 2
    assert commands[0].endswith("gateway serve")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()

    assert quick_start_commands()[1] in ci_script


def test_the_readme_documents_every_setting() -> None:
    from gateway.settings import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [
        f"GATEWAY_{name.upper()}"
        for name in Settings.model_fields
        if f"`GATEWAY_{name.upper()}`" not in readme
    ]
    assert missing == []
