"""A recorded dhclient lease made current: the fixture in tests/unit/leases/ was written by a
real dhclient on 2026-12-06 and expired that evening, so a test that reads it with the clock
of the day (plan, apply, the policy's facts) moves its renew, rebind and expire times forward
together, keeping their spacing and the file's format."""

from __future__ import annotations

import calendar
import re
import time

STAMP = re.compile(
    r"^(\s*(?:renew|rebind|expire) )(\d) (\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2});", re.M
)
FORMAT = "%Y/%m/%d %H:%M:%S"


def current_dhclient_lease(text: str, now: float | None = None, left: float = 6 * 3600) -> str:
    """`text` with every renew/rebind/expire time moved by one offset so that the lease
    expires `left` seconds after `now` (the clock when None)."""
    expires = [
        calendar.timegm(time.strptime(m.group(3), FORMAT))
        for m in STAMP.finditer(text)
        if m.group(1).strip() == "expire"
    ]
    if not expires:
        raise ValueError("no expire time in the lease text")
    shift = int((time.time() if now is None else now) + left) - max(expires)

    def moved(match: re.Match[str]) -> str:
        when = time.gmtime(calendar.timegm(time.strptime(match.group(3), FORMAT)) + shift)
        weekday = (when.tm_wday + 1) % 7  # dhclient writes 0 for Sunday
        return f"{match.group(1)}{weekday} {time.strftime(FORMAT, when)};"

    return STAMP.sub(moved, text)
