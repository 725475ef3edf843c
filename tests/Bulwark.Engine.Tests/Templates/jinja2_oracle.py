#!/usr/bin/env python3
"""Second oracle for the chat-template tests: renders templates with Python Jinja2 set up
exactly as ../shared/fixtures/chat-templates/render_templates.py sets it up (which mirrors
transformers), by importing its make_env.

stdin:  {"fixtures": "<chat-templates folder>", "cases": [{"name", "template", "variables"}]}
stdout: {"<name>": {"ok": "<rendering>"} | {"error": "<type>", "message": "<str(e)>"}}
Exits non-zero (and the calling test fails) when Jinja2 or the fixtures are missing.
"""
import datetime
import json
import sys

request = json.load(sys.stdin)
sys.path.insert(0, request["fixtures"])
from render_templates import make_env  # noqa: E402  (the fixtures' own environment)

env = make_env(datetime.datetime(2025, 1, 15, 12, 0, 0))
results = {}
for case in request["cases"]:
    try:
        results[case["name"]] = {"ok": env.from_string(case["template"]).render(**case["variables"])}
    except Exception as e:  # every failure is a result to compare, whatever its type
        results[case["name"]] = {"error": type(e).__name__, "message": str(e)}
json.dump(results, sys.stdout, ensure_ascii=False)
