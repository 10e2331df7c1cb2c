"""Render the Go table tests' cases with the real Jinja2, set up the way
Synapse sets it up (select_autoescape, format_ts, mxc_to_http,
localpart_from_email, server_name), so jinja_test.go can check that the Go
engine gives the same output. Reads JSON cases on stdin, writes JSON results.
Run with TZ=UTC (format_ts uses local time, as in Synapse)."""

import json
import sys
import time
import urllib.parse

import jinja2


def format_ts(value, fmt):
    return time.strftime(fmt, time.localtime(value / 1000))


def make_mxc_to_http(base):
    def mxc_to_http(value, width, height, resize_method="crop"):
        if not base:
            raise RuntimeError("public_baseurl is not set")
        if value[0:6] != "mxc://":
            return ""
        rest, sep, frag = value[6:].partition("#")
        query = urllib.parse.urlencode(
            {"width": width, "height": height, "method": resize_method}
        )
        return base + "_matrix/media/v1/thumbnail/" + rest + "?" + query + (sep + frag)

    return mxc_to_http


def render(case):
    env = jinja2.Environment(
        loader=jinja2.DictLoader(case["files"]),
        autoescape=jinja2.select_autoescape(),
    )
    env.filters["format_ts"] = format_ts
    env.filters["mxc_to_http"] = make_mxc_to_http(case.get("base", ""))
    env.filters["localpart_from_email"] = lambda s: s.rsplit("@", 1)[0]
    env.globals.update(case.get("globals") or {})
    try:
        out = env.get_template(case["name"]).render(**(case.get("vars") or {}))
        return {"out": out}
    except Exception as e:  # the Go side only checks that both failed
        return {"error": type(e).__name__ + ": " + str(e)}


cases = json.load(sys.stdin)
json.dump([render(c) for c in cases], sys.stdout)
