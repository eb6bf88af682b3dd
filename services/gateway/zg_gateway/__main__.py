# SPDX-License-Identifier: Apache-2.0
"""`python -m zg_gateway` (and the `zg-gateway` script): see `zg_gateway.server`."""

from __future__ import annotations

from zg_gateway.server import main

if __name__ == "__main__":
    main()
