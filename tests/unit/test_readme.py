"""The README and docs/reference.md against the code: the Quick start CI runs, every setting."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_core import PydanticUndefined

from gateway.settings import ENV_PREFIX, Settings

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
    # The first minute shows the real job: the whole stack, signed in, rows through /rest.
    assert commands[0].endswith("gateway dev")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()

    assert quick_start_commands()[1] in ci_script


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"GATEWAY_{name.upper()}"
        for name in Settings.model_fields
        if f"`GATEWAY_{name.upper()}`" not in readme
    ]
    assert missing == []


def reference_setting_rows() -> dict[str, list[str]]:
    """The settings tables of docs/reference.md: {variable: [default, allowed, meaning]}."""
    text = (ROOT / "docs" / "reference.md").read_text()
    section = text.split("\n## Settings", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(GATEWAY_[A-Z0-9_]+)` \|(.*)\|", line)
        if match:
            assert match[1] not in rows, f"{match[1]} has two rows in docs/reference.md"
            rows[match[1]] = [cell.strip() for cell in match[2].split(" | ")]
    return rows


def documented_default(name: str) -> str | None:
    """How the reference writes a field's default: a literal in backticks, else prose (None)."""
    field = Settings.model_fields[name]
    value = field.default
    if value is PydanticUndefined or value is None or value == []:
        return None  # computed (number of CPUs), unset or empty: said in words
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, list):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def test_the_reference_documents_every_setting_with_its_default() -> None:
    rows = reference_setting_rows()
    variables = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}

    assert sorted(set(variables) - set(rows)) == []
    assert sorted(set(rows) - set(variables)) == [], "rows for settings that do not exist"
    for variable, name in variables.items():
        default, allowed, meaning = rows[variable]
        expected = documented_default(name)
        if expected is None:
            assert not default.startswith("`"), f"{variable}: the default is not a literal"
        else:
            assert default == expected, f"{variable}: documented {default}, code {expected}"
        assert allowed, f"{variable}: say what values it accepts"
        assert meaning, f"{variable}: say what it means"


def test_no_markdown_table_is_split_by_a_blank_line() -> None:
    """A blank line ends a table: the rows after it would render as one paragraph."""
    split = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = path.read_text().splitlines()
        for number, (before, blank, after) in enumerate(
            zip(lines, lines[1:], lines[2:], strict=False), 2
        ):
            if before.startswith("|") and not blank.strip() and after.startswith("| `"):
                split.append(f"{path.name}:{number}")
    assert split == []
