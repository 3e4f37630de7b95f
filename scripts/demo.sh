#!/usr/bin/env bash
# Install cannonade into .venv and run the demo: the embedded target on loopback, a
# ~20 s load test of examples/quickstart.py against it, the summary and an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/cannonade demo "$@"
