#!/usr/bin/env python3
"""The CPython baseline of bench/compare.sh (issue 13).

What Synapse does for every message with a Python spam checker: the
module's `async def check_event_for_spam(event)` is looked up in a dict of
registered callbacks and awaited, inside one running event loop. The
checker does the work of the Lua script in bench/callbacks_bench_test.go:
look the sender up in a dict of evil users, then check the content's body
with `in`. The event is a ready-made object with attributes and a content
dict, as Synapse's events are; building it is not timed (the Lua side's
engine gets a Go struct ready-made too).

Prints the median of the repeats in ns per awaited call:

    python3 bench/python/spam_check.py                  # 7 x 200,000 calls
    python3 bench/python/spam_check.py -n 50000 -r 5    # quicker
    python3 bench/python/spam_check.py --check          # verdicts only

Output: one line `ns/op MEDIAN (min MIN, max MAX, N repeats of M calls, Python X.Y.Z)`.
"""

import argparse
import asyncio
import platform
import statistics
import sys
import time

EVIL = {"@spammer:example.org": True}


class Event:
    """A Matrix event as a module sees it: attributes and a content dict."""

    __slots__ = ("type", "room_id", "sender", "event_id", "origin_server_ts", "content")

    def __init__(self, sender, body):
        self.type = "m.room.message"
        self.room_id = "!abcdefgh:example.org"
        self.sender = sender
        self.event_id = "$0123456789abcdef"
        self.origin_server_ts = 1700000000000
        self.content = {"msgtype": "m.text", "body": body}


async def check_event_for_spam(event):
    if EVIL.get(event.sender):
        return "M_FORBIDDEN"
    body = event.content.get("body")
    if isinstance(body, str) and "buy cheap" in body:
        return "M_FORBIDDEN"
    return "NOT_SPAM"


# The callbacks a module registered, by name, as the homeserver keeps them.
CALLBACKS = {"check_event_for_spam": check_event_for_spam}


async def timed(event, n):
    """ns per call over n awaited calls, each looked up by name."""
    callbacks = CALLBACKS
    start = time.perf_counter_ns()
    for _ in range(n):
        verdict = await callbacks["check_event_for_spam"](event)
        if verdict != "NOT_SPAM":
            raise SystemExit(f"unexpected verdict {verdict!r}")
    return (time.perf_counter_ns() - start) / n


async def check():
    cases = [
        (Event("@alice:example.org", "hello there, how are you doing today?"), "NOT_SPAM"),
        (Event("@spammer:example.org", "hi"), "M_FORBIDDEN"),
        (Event("@alice:example.org", "buy cheap watches"), "M_FORBIDDEN"),
    ]
    bad = 0
    for event, want in cases:
        got = await CALLBACKS["check_event_for_spam"](event)
        if got != want:
            print(f"{event.sender} {event.content['body']!r}: got {got}, want {want}", file=sys.stderr)
            bad += 1
    return bad


async def main(args):
    if args.check:
        bad = await check()
        print("verdicts agree" if bad == 0 else f"{bad} verdicts differ")
        return 1 if bad else 0
    event = Event("@alice:example.org", "hello there, how are you doing today?")
    await timed(event, max(1, args.n // 10))  # warm up
    runs = [await timed(event, args.n) for _ in range(args.r)]
    print(
        f"ns/op {statistics.median(runs):.1f} (min {min(runs):.1f}, max {max(runs):.1f}, "
        f"{args.r} repeats of {args.n} calls, Python {platform.python_version()})"
    )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=200_000, help="awaited calls per repeat")
    p.add_argument("-r", type=int, default=7, help="repeats; the median is printed")
    p.add_argument("--check", action="store_true", help="check the verdicts and exit")
    sys.exit(asyncio.run(main(p.parse_args())))
