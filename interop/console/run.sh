#!/usr/bin/env bash
# Browser tests of the web console: Playwright (playwright-core) driving Debian's chromium,
# headless, against a Warren the test starts itself (interop/console/test_console.mjs).
#
#   bash interop/console/run.sh [path/to/warren]      (default: target/release/warren)
#
# Screenshots of every page land in target/console-screenshots/. Installs nothing: chromium
# (apt-get install chromium) and the npm packages (cd interop/console && npm ci) must be
# present; .ci/run installs both.

set -euo pipefail

BIN=${1:-target/release/warren}
SUITE_TIMEOUT=${WARREN_CONSOLE_SUITE_TIMEOUT:-300}
if [[ "$BIN" != /* ]]; then
    BIN="$PWD/$BIN"
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

if [[ ! -x "$BIN" ]]; then
    echo "console tests: broker binary $BIN not found (build it: cargo build --release -p warren)" >&2
    exit 2
fi
CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
if [[ ! -x "$CHROMIUM_BIN" ]]; then
    echo "console tests: $CHROMIUM_BIN not found (apt-get install chromium)" >&2
    exit 2
fi
if [[ ! -d interop/console/node_modules/playwright-core ]]; then
    echo "console tests: playwright-core is not installed (cd interop/console && npm ci)" >&2
    exit 2
fi

rm -rf target/console-screenshots
"$CHROMIUM_BIN" --version
WARREN_BIN="$BIN" CHROMIUM_BIN="$CHROMIUM_BIN" timeout --kill-after=30 "$SUITE_TIMEOUT" \
    node --test --test-force-exit interop/console/test_console.mjs
echo "console tests: screenshots in target/console-screenshots/:"
ls target/console-screenshots
