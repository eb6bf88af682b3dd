# SPDX-License-Identifier: Apache-2.0
"""`ruff format --check` covers code and only code, the code is formatted, and scripts/test.sh
(what CI runs) fails when it is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = str(Path(sys.executable).parent / "ruff")
DRIFTED = 'x = {  "a":1}\n'


def format_check(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "format", "--check", "--config", str(ROOT / "pyproject.toml"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_repository_code_is_formatted() -> None:
    result = format_check(".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_flags_drifted_code_and_leaves_markdown_alone(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(f"# A guide\n\n```python\n{DRIFTED}```\n")
    assert format_check(str(tmp_path)).returncode == 0
    (tmp_path / "module.py").write_text(DRIFTED)
    result = format_check(str(tmp_path))
    assert result.returncode == 1
    assert "module.py" in result.stdout
    assert "guide.md" not in result.stdout


def test_ci_fails_on_format_drift() -> None:
    lines = (ROOT / "scripts" / "test.sh").read_text().splitlines()
    checks = [line for line in lines if "ruff format --check" in line]
    assert checks, "scripts/test.sh runs the format check"
    assert all("||" not in line and ">/dev/null" not in line for line in checks), checks
