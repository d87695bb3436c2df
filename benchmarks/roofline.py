"""How close each transform runs to this machine's FP32 GEMM peak, measured side by side in one run.

Interleaved per round, all through ONNX Runtime on the CPU with the same threads: a square float32
MatMul (the peak), the demo model's analysis transform, and its synthesis transform in both forms
(ConvTranspose as emitted, and the exact polyphase rewrite: one Conv per output phase + DepthToSpace).
The FLOPs of a transform are counted from its graph (2 x multiply-adds of every Conv/ConvTranspose,
GDN1's 1x1 mixing included), so GFLOP/s divided by the MatMul's GFLOP/s is the fraction of peak.
Each case is taken at its fastest round: noise on a shared machine only ever slows a run down.
"""

import argparse
import csv
import os
import platform
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

from roi_trt.checkpoint import load_checkpoint
from roi_trt.onnx_emit import transform_models
from roi_trt.onnx_rewrite import polyphase_deconv_model, standard_ops_model
from roi_trt.store import DEMO_CHECKPOINT


def conv_flops(proto, input_shape):
    """2 x multiply-adds of every Conv / ConvTranspose for a concrete input shape."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, input_shape):
        dim.Clear()
        dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            c_out, c_in, kh, kw = weights[node.input[1]]
            _, _, h, w = shapes[node.output[0]]
            total += 2 * c_out * c_in * kh * kw * h * w
        elif node.op_type == "ConvTranspose":
            c_in, c_out, kh, kw = weights[node.input[1]]
            _, _, h, w = shapes[node.input[0]]
            total += 2 * c_out * c_in * kh * kw * h * w
    return total


def matmul_model(n):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def main(argv=None):
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gemm", type=int, default=2048)
    parser.add_argument("-o", "--output", default=os.path.join(os.path.dirname(__file__), "results", "roofline.csv"))
    args = parser.parse_args(argv)

    model, _ = load_checkpoint(DEMO_CHECKPOINT)
    d, n_ch = model.downsampling, model.N
    encoder, decoder = (standard_ops_model(p) for p in transform_models(model, 13))  # as emitted: ConvTranspose
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, args.size, args.size), dtype=np.float32)
    latent = np.rint(rng.standard_normal((1, n_ch, args.size // d, args.size // d)) * 2).astype(np.float32)
    a = rng.random((args.gemm, args.gemm), dtype=np.float32)
    cases = {
        "gemm": (matmul_model(args.gemm), {"a": a, "b": a}, 2 * args.gemm ** 3),
        "analysis": (encoder, {"image": image}, conv_flops(encoder, image.shape)),
        "synthesis-convtranspose": (decoder, {"latent_hat": latent}, conv_flops(decoder, latent.shape)),
        "synthesis-polyphase": (polyphase_deconv_model(decoder), {"latent_hat": latent}, conv_flops(decoder, latent.shape)),
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {k: ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for k, (m, _, _) in cases.items()}
    transpose, poly = (sessions[k].run(None, cases[k][1])[0] for k in ("synthesis-convtranspose", "synthesis-polyphase"))
    print("polyphase vs ConvTranspose: max |diff| {:.2e}".format(float(np.abs(transpose - poly).max())))
    times = {k: [] for k in cases}
    for k in cases:  # warm-up
        sessions[k].run(None, cases[k][1])
    for _ in range(args.rounds):
        for k, (_, feeds, _) in cases.items():
            start = time.perf_counter()
            sessions[k].run(None, feeds)
            times[k].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    peak = cases["gemm"][2] / best["gemm"] / 1e9
    rows = []
    for k, (_, _, flops) in cases.items():
        gflops = flops / best[k] / 1e9
        rows.append({"case": k, "size": args.size if k != "gemm" else args.gemm, "gflop": round(flops / 1e9, 3),
                     "best_ms": round(1e3 * best[k], 2), "median_ms": round(1e3 * float(np.median(times[k])), 2),
                     "gflop_per_s": round(gflops, 1),
                     "fraction_of_peak": round(gflops / peak, 3), "threads": args.threads, "rounds": args.rounds,
                     "onnxruntime": ort.__version__, "cpu": platform.processor() or platform.machine()})
        print("{:<24} {:7.1f} ms  {:6.1f} GFLOP/s  {:5.1%} of the GEMM peak".format(
            k, rows[-1]["best_ms"], gflops, gflops / peak))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
