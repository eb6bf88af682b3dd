# SPDX-License-Identifier: Apache-2.0
"""The dependency licence report: every locked Python package (requirements/dev.txt, read
through pip-licenses from the installed metadata) and every npm package (package-lock.json,
node_modules where the lock names none), with its licence and whether Apache-2.0
distribution takes it as is. Fails (exit 1) on any other licence that
requirements/license-exceptions.toml does not list with its reason.

    .venv/bin/python scripts/licenses.py            # the table; exit 1 on a problem
    .venv/bin/python scripts/licenses.py --json     # the same as JSON
    .venv/bin/python scripts/licenses.py --problems # only what fails

Accepted as is: permissive licences (MIT, BSD, Apache-2.0, ISC, PSF, ...) and MPL-2.0, whose
copyleft covers only the MPL files themselves, which we ship unmodified. GPL, AGPL, LGPL, any
unknown licence and anything unrecognised need an exception: a person decided, and wrote why.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "dev.txt"
NPM_LOCK = ROOT / "package-lock.json"
EXCEPTIONS = ROOT / "requirements" / "license-exceptions.toml"

# SPDX identifiers Apache-2.0 distribution takes as is.
ACCEPTED = {
    "0BSD",
    "Apache-2.0",
    "BSD",  # "BSD License" classifiers name no clause count; every BSD variant is fine here
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CC0-1.0",
    "CNRI-Python",
    "ISC",
    "MIT",
    "MIT-0",
    "MPL-2.0",  # file-level copyleft: unmodified MPL files may ship beside Apache-2.0 code
    "PSF-2.0",
    "Public-Domain",
    "Python-2.0",
    "Unlicense",
    "Zlib",
}
# What trove classifiers and free-text metadata say, in SPDX terms.
ALIASES = {
    "apache": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd license": "BSD",
    "3-clause bsd license": "BSD-3-Clause",
    "mit license": "MIT",
    "isc license (iscl)": "ISC",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "public domain": "Public-Domain",
    "the unlicense (unlicense)": "Unlicense",
    "gnu general public license v3 (gplv3)": "GPL-3.0",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0",
}
IGNORED_WORDS = {"dfsg approved", "osi approved"}


@dataclass
class Package:
    ecosystem: str  # python | npm
    name: str
    version: str
    license: str
    verdict: str  # accepted | exception | PROBLEM
    note: str = ""


def _terms(expression: str) -> list[list[str]]:
    """A licence text as alternatives (OR) of conjunctions (AND, or `;` between classifiers)."""
    alternatives = []
    for alternative in re.split(r"\s+OR\s+", expression.strip()):
        parts = re.split(r"\s+AND\s+|;\s*", alternative.strip())
        terms = []
        for part in parts:
            word = part.strip()
            word = word if word.lower() in ALIASES else word.strip("()")
            if not word or word.lower() in IGNORED_WORDS:
                continue
            terms.append(ALIASES.get(word.lower(), word))
        alternatives.append(terms)
    return alternatives


def accepted(expression: str) -> bool:
    return any(terms and all(t in ACCEPTED for t in terms) for terms in _terms(expression))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_python() -> set[str]:
    pin = re.compile(r"^([A-Za-z0-9._-]+)==")
    lines = LOCK.read_text().splitlines()
    return {_canonical(m.group(1)) for line in lines if (m := pin.match(line))}


def python_packages() -> list[tuple[str, str, str]]:
    output = subprocess.run(
        [sys.executable, "-m", "piplicenses", "--from=mixed", "--format=json", "--with-system"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    locked = locked_python()
    found = [(p["Name"], p["Version"], p["License"]) for p in json.loads(output)]
    return [(n, v, lic) for n, v, lic in found if _canonical(n) in locked]


def _npm_license(entry: dict[str, Any], path: str) -> str:
    if entry.get("license"):
        return str(entry["license"])
    manifest = ROOT / path / "package.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if data.get("license"):
            return str(data["license"])
        types = [str(item.get("type", "")) for item in data.get("licenses", [])]
        if types:
            return " OR ".join(types)
    return "UNKNOWN"


def npm_packages() -> list[tuple[str, str, str]]:
    lock = json.loads(NPM_LOCK.read_text())
    found = set()
    for path, entry in lock["packages"].items():
        if not path:
            continue  # the project itself
        name = path.rsplit("node_modules/", 1)[-1]
        found.add((name, str(entry.get("version", "")), _npm_license(entry, path)))
    return sorted(found)


def report() -> list[Package]:
    exceptions = tomllib.loads(EXCEPTIONS.read_text()) if EXCEPTIONS.is_file() else {}
    packages = []
    for ecosystem, found in (("python", python_packages()), ("npm", npm_packages())):
        allowed: dict[str, str] = exceptions.get(ecosystem, {})
        for name, version, text in sorted(found, key=lambda p: p[0].lower()):
            if accepted(text):
                packages.append(Package(ecosystem, name, version, text, "accepted"))
            elif name in allowed:
                packages.append(Package(ecosystem, name, version, text, "exception", allowed[name]))
            else:
                packages.append(Package(ecosystem, name, version, text, "PROBLEM"))
    return packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--problems", action="store_true", help="only the packages that fail")
    args = parser.parse_args(argv)
    packages = report()
    problems = [p for p in packages if p.verdict == "PROBLEM"]
    shown = problems if args.problems else packages
    if args.json:
        print(json.dumps([asdict(p) for p in shown], indent=1))
    else:
        width = max((len(p.name) for p in shown), default=4)
        for p in shown:
            licence = p.license if len(p.license) <= 40 else p.license[:37] + "..."
            note = f"  ({p.note.splitlines()[0][:60]})" if p.note else ""
            row = f"{p.ecosystem:<6} {p.name:<{width}} {p.version:<12} {licence:<40}"
            print(f"{row} {p.verdict}{note}")
        counts = {v: sum(p.verdict == v for p in packages) for v in ("accepted", "exception")}
        print(
            f"\n{len(packages)} packages: {counts['accepted']} accepted, "
            f"{counts['exception']} by exception ({EXCEPTIONS.relative_to(ROOT)}), "
            f"{len(problems)} problems",
            file=sys.stderr,
        )
    for p in problems:
        print(
            f"error: {p.ecosystem} {p.name} {p.version} is licensed {p.license!r}: not one "
            f"Apache-2.0 distribution takes as is; replace it, or add it with the reason to "
            f"{EXCEPTIONS.relative_to(ROOT)}",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
