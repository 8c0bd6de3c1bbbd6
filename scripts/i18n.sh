#!/usr/bin/env bash
# Interface translations: extract -> update -> check. Safe to rerun at any time.
#   1. extract every _()/ngettext() string of annotation_ui (templates and Python) into
#      annotation_ui/locales/messages.pot (rewritten only when its messages changed);
#   2. update each language's messages.po from it (new strings arrive empty, or fuzzy when
#      they look like an old one; strings gone from the code are dropped);
#   3. check that every string of every language has a reviewed translation with the same
#      placeholders: exit 1 and list what is missing otherwise.
# Nothing is compiled: the app compiles the .po files in memory when it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFSTACK_VENV=${PREFSTACK_VENV:-.venv}
PY="$PREFSTACK_VENV/bin/python"
LOCALES=annotation_ui/locales
POT="$LOCALES/messages.pot"
LANGUAGES=$("$PY" -c 'from annotation_ui.i18n import TRANSLATED_LANGUAGES; print(" ".join(TRANSLATED_LANGUAGES))')

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "==> extract"
"$PY" -m babel.messages.frontend --quiet extract -F babel.cfg -o "$scratch/messages.pot" \
  --project=prefstack --add-comments=Translators: --add-location=file --no-wrap .
# The creation date changes on every run; keep the old file unless a message changed.
if [ -f "$POT" ] && diff -q <(grep -v '^"POT-Creation-Date:' "$POT") \
                            <(grep -v '^"POT-Creation-Date:' "$scratch/messages.pot") >/dev/null; then
  echo "    $POT is up to date"
else
  mkdir -p "$LOCALES"
  cp "$scratch/messages.pot" "$POT"
  echo "    wrote $POT"
fi

echo "==> update"
for language in $LANGUAGES; do
  "$PY" -m babel.messages.frontend --quiet update -i "$POT" -d "$LOCALES" -l "$language" \
    --init-missing --ignore-obsolete --ignore-pot-creation-date --no-wrap
done

echo "==> check"
if "$PY" -m annotation_ui.i18n; then
  echo "    every message is translated in: $LANGUAGES"
else
  echo "Translate the messages above in $LOCALES/<language>/LC_MESSAGES/messages.po, then rerun $0" >&2
  exit 1
fi
