#!/usr/bin/env bash
# Tab. I / Fig. 4-style precision and re-identification on this machine, with the offline detectors:
# MTCNN faces (as the paper) vs head boxes, OpenCV HOG persons vs visible boxes, dlib's 128-d embeddings
# for re-identification. Photos: the four bundled ones (the demo was trained on them) plus 24 faces from
# scikit-image's lfw_subset and three people-free scikit-image photos that the demo never saw, laid out
# by benchmarks/data/precision_photos.py; hand-made ground truth: benchmarks/data/precision_gt.odgt.
# Methods: the shipped demo (128, 2) model, JPEG and AVIF at quality 1/5/10, and blur / mask-out of the
# faces MTCNN finds on the original, then JPEG/AVIF. Then the operator's audit of the demo's output.
# Needs the precision extra (see the README). 4-10 minutes on 2 cores (620 image x method round trips).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
data="${PRECISION_DATA:-runs/precision_photos}"
mkdir -p "$out"
python benchmarks/data/precision_photos.py "$data"
roi-trt bench precision "$data" --annotations benchmarks/data/precision_gt.odgt --models demo --codecs jpeg,avif \
    --qualities 1,5,10 --baselines blur,maskout --face-detector mtcnn --person-detector hog \
    --threads "${THREADS:-2}" -o "$out/precision_cpu.csv" --force --no-progress
roi-trt bench precision-report "$out/precision_cpu.csv" --compare paper --plot "$out/precision_cpu_fig4.png" --force \
    | tee "$out/precision_cpu_report.txt"
# The audit an operator would run on the demo's decoded images (exit status 3: the gate fails).
rm -rf runs/precision_audit && mkdir -p runs/precision_audit/decoded
roi-trt encode "$data" -o runs/precision_audit/roi --no-progress > /dev/null
roi-trt decode runs/precision_audit/roi -o runs/precision_audit/decoded --no-progress > /dev/null
set +e
roi-trt audit runs/precision_audit/decoded --originals "$data" --annotate runs/precision_audit/annotated \
    > "$out/precision_audit.txt"
echo "exit status $?" >> "$out/precision_audit.txt"
set -e
cat "$out/precision_audit.txt"
