# SPDX-License-Identifier: Apache-2.0
"""Moments as people read them: a local time and how long until then."""

from __future__ import annotations

import time
from datetime import datetime


def duration(seconds: int) -> str:
    """`3 d 2 h`, `23 h 59 min` (hours up to two days), `4 min 10 s`, `12 s`."""
    seconds = max(0, seconds)
    days, rest = divmod(seconds, 86_400)
    if days >= 2:
        return f"{days} d {rest // 3_600} h"
    hours, rest = divmod(seconds, 3_600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def when(seconds_left: int, now: float | None = None) -> str:
    """`at 2026-11-30 10:16 (local time), in 23 h 59 min`: `seconds_left` counted by the chain's
    clock from its latest block, shown on this machine's clock."""
    at = datetime.fromtimestamp((time.time() if now is None else now) + max(0, seconds_left))
    return f"at {at.astimezone():%Y-%m-%d %H:%M %Z} (local time), in {duration(seconds_left)}"
