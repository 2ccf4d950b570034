#!/usr/bin/env bash
# Set up everything the study needs on a fresh machine: Debian fonts for the demo world's sign
# text and tesseract's script models for the sign reader (geolib.sign_reader), then a virtual environment in .venv holding exactly requirements.lock (exact versions,
# every file checked against its SHA-256) and the project itself. Idempotent: a second run only
# checks. Packages in .venv that the lock does not name are removed, so `pip freeze` equals the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
FONT_PACKAGES="fonts-noto-core fonts-noto-cjk"
# tesseract with the script models for the signs rapidocr cannot read (Cyrillic, Greek, Arabic, ...);
# keep in step with geolib.ocr.TESSERACT_MODELS
TESSERACT_PACKAGES="tesseract-ocr"
for s in cyrl grek arab hebr deva beng thai geor armn ethi sinh taml hang; do
  TESSERACT_PACKAGES="$TESSERACT_PACKAGES tesseract-ocr-script-$s"
done
DEBIAN_PACKAGES="$FONT_PACKAGES $TESSERACT_PACKAGES"
missing=""
for f in /usr/share/fonts/truetype/noto/NotoSans-Regular.ttf /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc; do
  [ -e "$f" ] || missing="$missing fonts($(basename "$f"))"
done
command -v tesseract >/dev/null 2>&1 || missing="$missing tesseract"
if command -v tesseract >/dev/null 2>&1; then
  have=$(tesseract --list-langs 2>/dev/null | tail -n +2)
  for m in Cyrillic Greek Arabic Hebrew Devanagari Bengali Thai Georgian Armenian Ethiopic Sinhala Tamil Hangul; do
    echo "$have" | grep -qx "$m" || missing="$missing tesseract:$m"
  done
fi
need_apt=0
[ -z "$missing" ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; }; then
    echo "setup: missing:$missing; installing Debian packages: $DEBIAN_PACKAGES"
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $DEBIAN_PACKAGES >/dev/null
  else
    case "$missing" in
      *fonts*)
        echo "setup: missing:$missing. Please install the Noto fonts and tesseract with its script models (Debian/Ubuntu: $DEBIAN_PACKAGES; conda: see environment.yml)" >&2
        exit 1;;
      *)  # tesseract is optional: without it the sign reader reads Latin, Chinese and Japanese only
        echo "setup: warning: missing:$missing; the sign reader (notebook 08) will not read other scripts. Install: $TESSERACT_PACKAGES" >&2;;
    esac
  fi
fi

stamp=.venv/.geolib-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import geolib" 2>/dev/null; then
  echo "setup: .venv is up to date"
  exit 0
fi
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "setup: requirements.lock is for CPython 3.11 on Linux x86-64; $("$PY" --version) found (set PYTHON=python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install=(.venv/bin/python -m pip install -q --disable-pip-version-check)
quiet_pip() {  # pip warns once per package about this machine's partial local mirrors: noise, not news
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# torch is locked as its CPU build (2.13.0+cpu). Machines of this project keep that wheel on disk
# (pip's find-links); elsewhere pip finds it on PyTorch's CPU index.
if ! ls /opt/wheels/torch-2.13.0+cpu-* >/dev/null 2>&1; then
  pip_install+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
quiet_pip "${pip_install[@]}" --require-hashes --no-deps -r requirements.lock
quiet_pip "${pip_install[@]}" --no-deps --no-build-isolation -e .
# remove what the lock does not name (a package installed by hand, one a dependency dropped)
extra=$(.venv/bin/python - <<'PY'
from importlib import metadata
from scripts.lock import locked_pins, normalise
pins = locked_pins(open("requirements.lock").read())
names = {normalise(d.metadata["Name"]) for d in metadata.distributions()}
print(" ".join(sorted(names - set(pins) - {"geolib", "pip"})))
PY
)
if [ -n "$extra" ]; then
  echo "setup: removing packages the lock does not name: $extra"
  .venv/bin/python -m pip uninstall -q -y $extra
fi
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (geolib)" >/dev/null
echo "$want" > "$stamp"
echo "setup: .venv holds requirements.lock ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
