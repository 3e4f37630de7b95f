"""Build uppercase_extractor.wasm, beside this file, from app.py with componentize-py.

    .venv/bin/python examples/plugins/uppercase-extractor/build.py [-o OUT.wasm]

componentize-py (in cannonade's `test` extra) bundles a Python interpreter and the
standard library with app.py into one WebAssembly component (~18 MB) for the
`extractor-plugin` world of the WIT that cannonade ships (cannonade/plugins/wit). It
takes about 15 s. Afterwards this directory is an installable plugin: plugin.toml names
the .wasm as its entry.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORLD = "extractor-plugin"
# Runs componentize-py's console script from the package, so it is found whichever
# Python runs this file, with or without the venv's bin/ on PATH.
_COMPONENTIZE = "import sys; from componentize_py import script; sys.exit(script())"


def build(out: Path) -> Path:
    wit = Path(str(files("cannonade.plugins") / "wit"))
    cmd = [sys.executable, "-c", _COMPONENTIZE, "-q", "-d", str(wit), "-w", WORLD]
    cmd += ["componentize", "-p", str(HERE), "app", "-o", str(out)]
    subprocess.run(cmd, check=True, cwd=HERE)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=HERE / "uppercase_extractor.wasm")
    print(build(parser.parse_args().out.resolve()))


if __name__ == "__main__":
    main()
