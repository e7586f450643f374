#!/usr/bin/env bash
# Install everything kvloop needs on a fresh Debian machine: system packages (tesseract OCR,
# poppler for PDFs, fonts for the demo renderer, Chromium for browser tests, PostgreSQL for the
# team store) and the Python package with its pinned CPU torch. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(tesseract-ocr tesseract-ocr-eng poppler-utils fonts-dejavu-core fonts-liberation
              chromium postgresql)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
# torch first and pinned: the CPU wheel on this disk; an unpinned torch pulls a CUDA build.
$PY -m pip install -q --disable-pip-version-check "torch==2.13.0"
$PY -m pip install -q --disable-pip-version-check -e ".[test]"
