#!/usr/bin/env bash
# Tab. II on a Jetson (Nano or Orin), one command: build FP32 TensorRT engines of MODEL (default: the shipped
# demo) on this Jetson, then time TensorRT (GPU) and ONNX Runtime (CPU) encode/decode beside JPEG with the
# paper's protocol (512x512, 10 runs per image, host<->device copies included) into one CSV, and report it.
# Usage: bash jetson/bench.sh [MODEL] [OUT.csv]; TARGET=nano|orin|... names the build target (default: auto,
# this GPU's); GDN=plugin uses the fused GDN1 plugin (built by install.sh);
# DECONV=polyphase builds the decoder's transposed convolutions in phases, DECONV=both builds both forms and
# times them side by side (which one TensorRT runs faster on a Nano has not been measured yet).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-demo}
out=${2:-jetson.csv}
target=${TARGET:-auto}
forms=${DECONV:-convtranspose}
[ "$forms" = both ] && forms="convtranspose polyphase"
models=""
first=""
for form in $forms; do
    engines=engines/$(basename "${model%/}")-$target-${GDN:-inline}
    [ "$form" = polyphase ] && engines=$engines-polyphase
    if [ -z "$first" ]; then
        python3 -m roi_trt.cli build "$model" --target "$target" --gdn "${GDN:-inline}" --deconv "$form" -o "$engines" --force
        first=$engines
    else  # the encoder has no transposed convolutions: build it once
        python3 -m roi_trt.cli build "$model" --target "$target" --gdn "${GDN:-inline}" --deconv "$form" --part decoder \
            -o "$engines" --force
        cp "$first"/encoder.*.engine "$first"/encoder.*.engine.json "$engines"/
    fi
    models="$models$engines,"
done
# one run, side by side: the engines on the GPU, the export on the CPU (the other pairings are skipped with a note)
python3 -m roi_trt.cli bench latency --models "$models$model" --backends tensorrt,onnxruntime --codecs jpeg \
    -o "$out" --force
python3 -m roi_trt.cli bench report "$out" --compare paper
