#!/usr/bin/env bash
# Tab. II/III-style latency on this machine: the paper's three configurations, our codec through ONNX
# Runtime beside the paper's PyTorch + CompressAI pipeline, against JPEG and AVIF at quality 1/5/10, on
# the bundled sample photos resized to 512x512. (128, 2) is the shipped demo checkpoint (trained, so its
# bpp means something); (256, 2) and (256, 1) use random weights (same latency, meaningless bpp).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
roi-trt bench latency --models 256-2,256-1,demo --backends torch,onnxruntime --codecs jpeg,avif \
    --qualities 1,5,10 --repeats 10 --warmup 1 --size 512 --threads "${THREADS:-2}" -o "$out/latency_cpu.csv" --force
roi-trt bench report "$out/latency_cpu.csv" --compare paper --plot "$out/latency_cpu_fig5.png" --force | tee "$out/latency_cpu_report.txt"
