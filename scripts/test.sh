#!/usr/bin/env bash
# Set up and run every check: ruff, mypy, import contracts, then the whole test suite on
# SQLite and then on PostgreSQL (PREFSTACK_TEST_POSTGRES_URL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_venv "dev,train"
PY="$PREFSTACK_VENV/bin/python"
BIN="$PREFSTACK_VENV/bin"
export PREFSTACK_TEST_POSTGRES_URL=${PREFSTACK_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

loud() { printf '\n\033[1;33m!!! %s\033[0m\n\n' "$*" >&2; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)          # the browser tests
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)         # tests/deployment: docs/deploy.md's proxy config
command -v openssl >/dev/null || missing+=(openssl)      # its TLS certificate
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian's ${missing[*]} for the browser and deployment tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
pytest_marks=()
if [ ! -x /usr/bin/chromium ]; then
  [ "${CI:-}" = "true" ] && { echo "chromium is missing: the browser tests cannot run" >&2; exit 1; }
  loud "/usr/bin/chromium is missing: SKIPPING the browser tests (apt-get install chromium)"
  pytest_marks=(-m "not browser")
fi

echo "==> ruff"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
echo "==> mypy"
"$BIN/mypy"
echo "==> import contracts"
"$BIN/lint-imports" --no-cache

echo "==> tests on SQLite"
PREFSTACK_TEST_BACKEND=sqlite "$BIN/pytest" "${pytest_marks[@]}" "$@"

if "$PY" - <<'PYEOF'
import os, sys
import psycopg
from sqlalchemy.engine.url import make_url
url = make_url(os.environ["PREFSTACK_TEST_POSTGRES_URL"])
try:
    psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database, connect_timeout=3,
    ).close()
except Exception as error:
    print(f"PostgreSQL at {url.render_as_string(hide_password=True)} does not answer: {error}", file=sys.stderr)
    sys.exit(1)
PYEOF
then
  echo "==> tests on PostgreSQL"
  PREFSTACK_TEST_BACKEND=postgresql "$BIN/pytest" "${pytest_marks[@]}" "$@"
else
  [ "${CI:-}" = "true" ] && { echo "PostgreSQL is required under CI=true" >&2; exit 1; }
  loud "No PostgreSQL server answers: the PostgreSQL leg was SKIPPED. Set PREFSTACK_TEST_POSTGRES_URL."
fi
echo "==> all checks passed"
