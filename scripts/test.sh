#!/usr/bin/env bash
# Install what the tests need and run the whole suite: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy (strict, src/)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
