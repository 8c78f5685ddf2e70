#!/usr/bin/env bash
# Creates .venv with Python 3.11+ if missing (installing python3-venv on Debian when ensurepip is absent)
# and installs the given requirements file when it changed since the last install.
set -euo pipefail
req="${1:-requirements.txt}"
venv=".venv"
py="${PYTHON:-python3}"

"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "HyperSentry needs Python 3.11+; $py is $("$py" --version 2>&1)" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    echo "python venv support missing: installing python3-venv"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$py" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip
fi

stamp="$venv/.installed-$(basename "$req")"
hash=$(cat requirements.txt "$req" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "Installing $req into $venv"
  "$venv/bin/python" -m pip install -q -r "$req"
  echo "$hash" > "$stamp"
fi
