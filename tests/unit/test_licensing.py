# SPDX-License-Identifier: Apache-2.0
"""Licence hygiene: LICENSE is the Apache License 2.0, NOTICE names the GPL-3.0 material, every
source file the project wrote says `SPDX-License-Identifier: Apache-2.0` in its first lines
(and no other identifier), the generated verifier carries no third-party template text, and
the dependency licence check classifies licences as it should."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from zg_shared.scripts import script_module

REPO = Path(__file__).resolve().parents[2]
SPDX = "SPDX-License-Identifier: Apache-2.0"
# Where a comment can go, the files we write: code, scripts, deploy configuration.
SOURCE_SUFFIXES = {
    ".py", ".pyi", ".sh", ".yaml", ".yml", ".toml", ".acl", ".in",
    ".sol", ".circom", ".mjs", ".js", ".cjs", ".c", ".html",
}  # fmt: skip
SOURCE_NAMES = {"Dockerfile", "run"}  # .ci/run
HEADER_LINES = 3  # after a shebang, a Dockerfile parser directive or an HTML doctype


def project_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        REPO / name
        for name in listed
        if (REPO / name).is_file()
        and (Path(name).suffix in SOURCE_SUFFIXES or Path(name).name in SOURCE_NAMES)
    ]


def test_every_source_file_carries_the_apache_spdx_line() -> None:
    files = project_files()
    assert len(files) > 250
    missing = [
        str(f.relative_to(REPO))
        for f in files
        if SPDX not in "".join(f.read_text().splitlines(keepends=True)[:HEADER_LINES])
    ]
    assert not missing, f"add `{SPDX}` to the first lines of: {missing}"


def test_no_source_file_declares_another_licence() -> None:
    others = [
        str(f.relative_to(REPO))
        for f in project_files()
        for line in f.read_text().splitlines()
        if "SPDX-License-Identifier:" in line
        and SPDX not in line
        and '"SPDX-License-Identifier:' not in line  # this test's own constants
        and f.name != Path(__file__).name
    ]
    assert not others, f"another licence than Apache-2.0 declared in {others}"


def test_license_is_apache_2_and_notice_names_the_gpl_material() -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    notice = (REPO / "NOTICE").read_text()
    for name in ("circomlib", "snarkjs", "groth16py", "GPL-3.0", "Corresponding Source"):
        assert name in notice, name
    assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSES" / "GPL-3.0.txt").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"


def test_the_verifiers_carry_no_third_party_template_text() -> None:
    for sol in (REPO / "contracts" / "src" / "verifiers").glob("*.sol"):
        text = sol.read_text()
        assert text.startswith(f"// {SPDX}\n"), sol.name
        for marker in ("GPL", "0KIMS", "snarkJS", "iden3"):
            assert marker not in text, f"{sol.name}: {marker}"


# ------------------------------------------------------------------ the dependency check


licenses = script_module(REPO / "scripts" / "licenses.py")


@pytest.mark.parametrize(
    ("expression", "ok"),
    [
        ("MIT", True),
        ("MIT License", True),
        ("Apache Software License; MIT License", True),
        ("Apache-2.0 OR GPL-3.0", True),
        ("MIT AND GPL-3.0", False),
        ("Mozilla Public License 2.0 (MPL 2.0)", True),
        ("DFSG approved; MIT License", True),
        ("GNU General Public License v3 (GPLv3)", False),
        ("GPL-3.0", False),
        ("AGPL-3.0-only", False),
        ("LGPL-3.0-or-later", False),
        ("UNKNOWN", False),
        ("", False),
    ],
)
def test_licences_are_classified(expression: str, ok: bool) -> None:
    assert licenses.accepted(expression) is ok


def test_every_exception_says_why() -> None:
    exceptions = tomllib.loads((REPO / "requirements" / "license-exceptions.toml").read_text())
    for ecosystem, entries in exceptions.items():
        for name, reason in entries.items():
            assert len(reason) > 40, f"{ecosystem} {name}: say why"


def test_the_npm_report_reads_the_lock() -> None:
    npm = {name: text for name, _, text in licenses.npm_packages()}
    assert npm["circomlib"] == "GPL-3.0"
    assert npm["@openzeppelin/contracts"] == "MIT"
