# Shared by scripts/*.sh: create the virtualenv and install prefstack into it.
# Usage: source scripts/_env.sh; ensure_venv "EXTRAS"   (EXTRAS e.g. "dev,train", or "" for none)

PREFSTACK_VENV=${PREFSTACK_VENV:-.venv}
TORCH_VERSION=2.13.0

ensure_venv() {
  local extras=$1
  if [ ! -x "$PREFSTACK_VENV/bin/python" ]; then
    echo "==> creating virtualenv $PREFSTACK_VENV"
    python3 -m venv "$PREFSTACK_VENV"
    "$PREFSTACK_VENV/bin/python" -m pip install --quiet --upgrade pip >"$PREFSTACK_VENV/install.log" 2>&1 \
      || { cat "$PREFSTACK_VENV/install.log" >&2; exit 1; }
  fi
  if [[ ",$extras," == *",train,"* ]] && ! "$PREFSTACK_VENV/bin/python" -c "import torch" 2>/dev/null; then
    # torch first and pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
    echo "==> installing torch==$TORCH_VERSION (CPU)"
    "$PREFSTACK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" \
      >"$PREFSTACK_VENV/install.log" 2>&1 || { cat "$PREFSTACK_VENV/install.log" >&2; exit 1; }
  fi
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  echo "==> installing prefstack ($spec)"
  local log="$PREFSTACK_VENV/install.log"
  if ! "$PREFSTACK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >"$log" 2>&1; then
    cat "$log" >&2
    echo "pip install failed (log: $log)" >&2
    exit 1
  fi
  "$PREFSTACK_VENV/bin/python" -c "import app, annotation_ui, preference_store, export" \
    || { echo "prefstack did not install into $PREFSTACK_VENV" >&2; exit 1; }
}
