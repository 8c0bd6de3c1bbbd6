#!/usr/bin/env bash
# Set up prefstack and serve the demo on SQLite: http://127.0.0.1:${PREFSTACK_PORT:-8000}/
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_venv ""
export PREFSTACK_DATABASE_URL=${PREFSTACK_DATABASE_URL:-sqlite:///./prefstack.db}
exec "$PREFSTACK_VENV/bin/prefstack" demo
