# SPDX-License-Identifier: Apache-2.0
"""The repository describes its own protocol: nothing cites a document outside it, and every
citation of docs/protocol.md names a section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "protocol.md"
# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"|\b" + "SP" + r"EC\b")
CITATION = re.compile(r"protocol\.md,?\s+(?:section|sec\.)\s+(\d+)")
SECTION = re.compile(r"^## (\d+)\. ", re.MULTILINE)
TEXT_SUFFIXES = {
    *(".py", ".md", ".sol", ".circom", ".sh", ".yaml", ".yml", ".toml", ".html", ".js", "")
}


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    paths = (ROOT / name.decode() for name in filter(None, listed))
    return [p for p in paths if p.suffix in TEXT_SUFFIXES and p.is_file()]


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == [], "cite docs/protocol.md instead:\n" + "\n".join(found)


def test_every_citation_of_the_protocol_names_a_section_it_has() -> None:
    sections = set(SECTION.findall(PROTOCOL.read_text()))
    cited = {
        (str(path.relative_to(ROOT)), number)
        for path in tracked_text_files()
        for number in CITATION.findall(path.read_text(errors="replace"))
    }
    assert cited, "the code and docs cite docs/protocol.md sections"
    missing = sorted(c for c in cited if c[1] not in sections)
    assert missing == []
