"""Write the events' JSON Schema: ``python -m assistant.events_schema docs/events.schema.json``.

The committed file is what integrators validate against; ``tests/test_events.py`` fails when it
drifts from ``assistant/events.py`` (run ``make schema`` to refresh it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from assistant.events import event_json_schema


def schema_text() -> str:
    """The schema exactly as committed: sorted keys, indent 2, trailing newline."""
    return json.dumps(event_json_schema(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m assistant.events_schema OUTPUT.json", file=sys.stderr)
        return 2
    output = Path(args[0])
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(schema_text(), encoding="utf-8")
    except OSError as error:
        print(f"error: cannot write {output}: {error.strerror}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
