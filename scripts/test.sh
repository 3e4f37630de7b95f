#!/usr/bin/env bash
# Install what the tests need and run the whole suite: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
# The protocol plugins in plugins/: installed so cannonade finds their entry points and
# the root pytest run (testpaths) can import them.
.venv/bin/python -m pip install -q -e plugins/cannonade-redis
echo "== ruff"
.venv/bin/ruff check src tests bench plugins
.venv/bin/ruff format --check src tests bench plugins
echo "== mypy (strict, src/ and the plugins)"
.venv/bin/mypy
.venv/bin/mypy --strict plugins/cannonade-redis/src
echo "== node (examples/runners/node-loads)"
# The Node.js example runners need node and npm (apt on Debian, like bootstrap.sh) and
# node-loads' node_modules from its package-lock.json; `npm ci` runs again only when
# the lock file changed. Without them their tests are skipped, with the reason.
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# plugins/cannonade-redis tests run a real redis-server (apt, in the same update).
command -v redis-server >/dev/null || missing+=(redis-server)
# tests/e2e/test_dashboard.py drives Debian's chromium (headless, through Playwright).
[ -x /usr/bin/chromium ] || missing+=(chromium)
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } ||
    echo "warning: could not install ${missing[*]}" >&2
fi
command -v redis-server >/dev/null ||
  echo "warning: redis-server not found: the redis plugin's server tests will be skipped" >&2
[ -x /usr/bin/chromium ] ||
  echo "warning: chromium not found: the dashboard's browser tests will be skipped" >&2
node_loads=examples/runners/node-loads
if command -v node >/dev/null && command -v npm >/dev/null; then
  lock=$(sha256sum "$node_loads/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$node_loads/node_modules/.package-lock.sha256" 2>/dev/null)" != "$lock" ]; then
    if (cd "$node_loads" && npm ci --no-audit --no-fund); then
      echo "$lock" >"$node_loads/node_modules/.package-lock.sha256"
    else
      echo "warning: npm ci failed in $node_loads: its tests will be skipped" >&2
    fi
  fi
else
  echo "warning: node/npm not found: the Node.js example tests will be skipped" >&2
fi
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
