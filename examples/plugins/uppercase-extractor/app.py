"""uppercase-extractor: a boundary extractor that upper-cases the match.

The Python twin of loadr's Rust example. componentize-py turns this module into a WASM
component for the `extractor-plugin` world of cannonade's loadr.wit (see build.sh).
Config: {"left": "token=", "right": ";"} extracts what lies between the first `left`
and the next `right`, upper-cased; with "upper": false it keeps the case (a plain
boundary extractor, which the suite uses to carry a login token through WASM).
"""

import json

from wit_world import exports
from wit_world.exports import meta


class Meta(exports.Meta):
    def describe(self) -> meta.Info:
        return meta.Info(
            name="uppercase-extractor",
            version="0.1.0",
            kind="extractor",
            description="boundary extractor that upper-cases the match",
        )


class Extractor(exports.Extractor):
    def extract(self, body: bytes, headers: list[tuple[str, str]], config: str) -> str | None:
        try:
            cfg = json.loads(config)
            left, right = cfg["left"], cfg["right"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(left, str) or not isinstance(right, str):
            return None
        text = body.decode("utf-8", errors="replace")
        start = text.find(left)
        if start < 0:
            return None
        start += len(left)
        end = text.find(right, start)
        if end < 0:
            return None
        found = text[start:end]
        return found if cfg.get("upper", True) is False else found.upper()
