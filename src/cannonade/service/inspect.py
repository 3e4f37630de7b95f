"""``python -m cannonade.service.inspect FILE``: import a scenario, print what the HQ
needs to know of it as one JSON line (``{"sha256", "thresholds", "scenarios"}`` or
``{"error"}``). Run as a child of the HQ, so an uploaded scenario's import-time code
never runs inside the HQ itself."""

from __future__ import annotations

import json
import os
import sys

from cannonade.errors import CannonadeError
from cannonade.scenarios.loader import load_path


def main(argv: list[str]) -> int:
    # The scenario may print at import: only the last line of stdout is the answer.
    out = os.fdopen(os.dup(1), "w")
    try:
        found = load_path(argv[0])
    except CannonadeError as e:
        print("\n" + json.dumps({"error": str(e)}), file=out, flush=True)
        return 0
    answer = {
        "sha256": found.sha256,
        "thresholds": list(found.thresholds),
        "scenarios": [s.name for s in found.scenarios],
    }
    print("\n" + json.dumps(answer), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
