#!/usr/bin/env bash
# Set up everything the study needs on a fresh machine: Debian fonts for the demo world's sign
# text, a virtual environment in .venv with the project and its test extras. Idempotent: a
# second run only checks. Every pip install goes through constraints.txt (torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_fonts=0
for f in /usr/share/fonts/truetype/noto/NotoSans-Regular.ttf /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc; do
  [ -e "$f" ] || need_fonts=1
done
if [ "$need_fonts" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Noto fonts (Debian fonts-noto-core, fonts-noto-cjk)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-core fonts-noto-cjk >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-core fonts-noto-cjk >/dev/null
  else
    echo "setup: please install the Noto fonts (Debian/Ubuntu: fonts-noto-core fonts-noto-cjk; conda: see environment.yml)" >&2
    exit 1
  fi
fi

stamp=.venv/.geolib-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import geolib" 2>/dev/null; then
  echo "setup: .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (geolib)" >/dev/null
echo "$want" > "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
