#!/usr/bin/env bash
# Installs what the engine and its test suite need on a fresh Debian 12 machine:
# the Debian packages of the real peers and speech tools (when missing), a
# virtual environment in .venv, and the project with pinned dependencies.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  sip-tester          # SIPp: test caller and load generator (GPL, test-only)
  baresip-core        # baresip: real softphone peer (test-only)
  kamailio            # SIP proxy/registrar for the pyVoIP baseline (test-only)
  espeak-ng libespeak-ng1  # TTS voice used by pyttsx3 (GPL-3, runs beside the engine)
  sox                 # audio conversions in tests
  tshark              # RTP stream analysis in benchmarks
  chromium            # headless browser for WebRTC agent tests
  asterisk-core-sounds-en-wav asterisk-core-sounds-en  # real human prompts + their text
  graphviz            # `dot`: renders `ivr graph` flow diagrams (SVG/PNG)
  gcc python3-dev     # C compiler and headers for mypyc: `make acd-native` (tests/test_acd_native.py)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.venv/.stamp-deps
if [ ! -f "$stamp" ] || [ constraints.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python dependencies (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
