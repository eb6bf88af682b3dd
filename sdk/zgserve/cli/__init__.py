# SPDX-License-Identifier: Apache-2.0
"""`zg`: the command line of the 0G Serving Network (docs/cli.md)."""
