#!/usr/bin/env bash
# Install the torch-free edge runtime on a Jetson Nano (JetPack 4.6, Python 3.6) from this checkout.
# Needs gcc and the Python headers (JetPack has both; else: sudo apt-get install build-essential python3-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --user --upgrade "pip<22"   # JetPack's pip 9 cannot read manylinux2014 wheels
python3 -m pip install --user -r jetson/requirements.txt
python3 -m pip install --user --no-deps .          # builds the rANS core with gcc
python3 -m roi_trt.cli --version
