# SPDX-License-Identifier: Apache-2.0
"""`zg` (and `python -m zgserve.cli`)."""

from __future__ import annotations

import sys

from zgserve.cli._app import cli


def main() -> None:
    sys.exit(cli.main(prog_name="zg", standalone_mode=True))


if __name__ == "__main__":
    main()
