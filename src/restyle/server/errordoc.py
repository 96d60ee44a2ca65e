"""``python -m restyle.server.errordoc``: the API's error answers, route by route, as Markdown made
from the server's own ``/openapi.json`` (docs/api-errors.md is this output; a test keeps it so)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from restyle.server.app import create_app
from restyle.server.errors import MEANING
from restyle.server.settings import Settings

HEAD = """# The API's error answers

Every error answer of the HTTP API has one JSON body, `ErrorBody`: `error` is one line saying what
failed, in the client's terms; `detail` is that line, or for a 422 the list of the fields at fault,
each with `loc` (e.g. `["body", "options", "size"]`), `msg` and `type`. A 401 carries
`WWW-Authenticate: Bearer`; a 429 and a 503 carry `Retry-After` (seconds).

This page is generated from the server's `/openapi.json` (`python -m restyle.server.errordoc`); a
running server's own `/openapi.json` also states its caps (size, iterations, style images, upload size).

## What each status means

| status | meaning |
|---|---|
"""


def render(schema: dict[str, Any]) -> str:
    lines = [HEAD.rstrip("\n")]
    lines += [f"| {code} | {text} |" for code, text in sorted(MEANING.items())]
    lines += ["", "## Route by route", "", "| route | answers | errors, in the route's words |", "|---|---|---|"]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            codes = sorted(op["responses"], key=int)
            ok = ", ".join(c for c in codes if int(c) < 400)
            errors = "; ".join(f"**{c}** {op['responses'][c]['description']}" for c in codes
                               if int(c) >= 400 and op["responses"][c]["description"] != MEANING.get(int(c)))
            shown = ", ".join(c for c in codes if int(c) >= 400)
            lines.append(f"| `{method.upper()} {path}` | {ok}; {shown} | {errors} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings(data=Path(data), devices=[]))
        sys.stdout.write(render(app.openapi()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
