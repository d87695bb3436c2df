"""How close each transform runs to this machine's FP32 GEMM peak, measured side by side in one run.

Interleaved per round, all through ONNX Runtime on the CPU with the same threads: square float32
MatMuls (with a constant right-hand side, which ONNX Runtime prepacks as it does every Conv weight,
and with two inputs) and a dense 5x5 Conv; then, for the demo (128, 2) and a (256, 2) model, the
analysis transform and the synthesis transform as ConvTranspose (as emitted), in phases (the exact
rewrite `roi-trt export` writes by default), and two variants of that: phases placed by DepthToSpace
(as first exported) and the 3-channel image layer in phases too. The FLOPs of a transform are
counted from its graph (2 x multiply-adds of every Conv/ConvTranspose, GDN1's 1x1 mixing included;
the phase forms are credited with the ConvTranspose's FLOPs, their interleave with none). The peak
is the fastest of those GEMMs, so GFLOP/s divided by it is the fraction of peak (also given against
the fastest MatMul alone). Each sample repeats its case for about the same time (short cases would
otherwise catch the machine's quiet moments more often), and each case is taken at its fastest
sample: noise on a shared machine only ever slows a run down.
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.checkpoint import load_checkpoint, random_model
from roi_trt.onnx_emit import transform_models
from roi_trt.onnx_rewrite import polyphase_deconv_model, replace_nodes, standard_ops_model
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


def matmul_model(n, constant_b):
    rng = np.random.default_rng(1)
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    weights = [numpy_helper.from_array(rng.random((n, n), dtype=np.float32), "b")] if constant_b else []
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [a] if constant_b else [a, b], [c], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def conv_model(channels, kernel):
    weight = np.random.default_rng(1).random((channels, channels, kernel, kernel), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[kernel // 2] * 4)], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def gemm_cases(sizes, conv_size=64, conv_channels=256, kernel=5):
    """MatMuls of each size (constant and two-input), and one dense Conv: ONNX Runtime runs Convs in its
    channel-blocked kernels, a GEMM form that can outrun its MatMul; the peak is the fastest of them."""
    rng = np.random.default_rng(0)
    cases = {}
    for n in sizes:
        a = rng.random((n, n), dtype=np.float32)
        cases["gemm-{}-constant".format(n)] = ("gemm", n, matmul_model(n, True), {"a": a}, 2 * n ** 3)
        cases["gemm-{}".format(n)] = ("gemm", n, matmul_model(n, False), {"a": a, "b": a}, 2 * n ** 3)
    x = rng.random((1, conv_channels, conv_size, conv_size), dtype=np.float32)
    cases["gemm-conv{0}x{0}-{1}".format(kernel, conv_channels)] = (
        "gemm", conv_size, conv_model(conv_channels, kernel), {"x": x},
        2 * conv_channels ** 2 * kernel ** 2 * conv_size ** 2)
    return cases


def depth_to_space_interleave(proto):
    """The polyphase form as first exported: the phases concatenated phase by phase and placed by
    DepthToSpace (DCR) instead of the one-hot depthwise ConvTranspose."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    interleaves = {n.name[: -len("/interleave")]: n for n in model.graph.node if n.name.endswith("/interleave")}
    nodes = []
    for node in model.graph.node:
        base = next((b for b in interleaves if node.name.startswith(b + "/")), None)
        if base is None or (node.op_type == "Conv" and "/phase" in node.name):
            nodes.append(node)
        elif node.name == base + "/interleave":
            phases = ["{}/phase{}{}".format(base, rh, rw) for rh in range(2) for rw in range(2)]
            nodes += [helper.make_node("Concat", phases, [base + "/dcr"], axis=1),
                      helper.make_node("DepthToSpace", [base + "/dcr"], list(node.output), blocksize=2, mode="DCR")]
    replace_nodes(model.graph, nodes, [])
    return model


def transform_cases(model, label, size):
    d = model.downsampling
    encoder, decoder = (standard_ops_model(p) for p in transform_models(model, 13))  # as emitted: ConvTranspose
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, size, size), dtype=np.float32)
    latent = np.rint(rng.standard_normal((1, model.N, size // d, size // d)) * 2).astype(np.float32)
    flops = conv_flops(decoder, latent.shape)
    return {
        label + " analysis": (label, size, encoder, {"image": image}, conv_flops(encoder, image.shape)),
        label + " synthesis-convtranspose": (label, size, decoder, {"latent_hat": latent}, flops),
        label + " synthesis-polyphase": (label, size, polyphase_deconv_model(decoder), {"latent_hat": latent}, flops),
        label + " synthesis-polyphase-depthtospace": (
            label, size, depth_to_space_interleave(polyphase_deconv_model(decoder)), {"latent_hat": latent}, flops),
        label + " synthesis-polyphase-image-layer-too": (
            label, size, polyphase_deconv_model(decoder, min_channels=1), {"latent_hat": latent}, flops),
    }


def main(argv=None):
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sample-seconds", type=float, default=0.6,
                        help="each timed sample repeats its case this long, so short and long cases meet the same noise")
    parser.add_argument("--gemm", type=int, nargs="+", default=[2048, 4096], help="MatMul sizes for the peak")
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "roofline.csv"))
    args = parse_arguments(parser, argv)

    demo, _ = load_checkpoint(DEMO_CHECKPOINT)
    cases = gemm_cases(args.gemm)
    cases.update(transform_cases(demo, "demo-128-2", args.size))
    cases.update(transform_cases(random_model(256, 2)[0], "random-256-2", args.size))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {k: ort.InferenceSession(c[2].SerializeToString(), options, providers=["CPUExecutionProvider"])
                for k, c in cases.items()}
    for label in {c[0] for c in cases.values()} - {"gemm"}:
        transpose = sessions[label + " synthesis-convtranspose"].run(None, cases[label + " synthesis-convtranspose"][3])[0]
        for form in ("polyphase", "polyphase-depthtospace", "polyphase-image-layer-too"):
            key = "{} synthesis-{}".format(label, form)
            diff = float(np.abs(sessions[key].run(None, cases[key][3])[0] - transpose).max())
            print("{}: {} vs ConvTranspose max |diff| {:.2e}".format(label, form, diff))
    repeats = {}
    for k in cases:  # warm-up, and as many calls per sample as make it last --sample-seconds
        start = time.perf_counter()
        sessions[k].run(None, cases[k][3])
        repeats[k] = max(1, int(round(args.sample_seconds / (time.perf_counter() - start))))
    times = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, case in cases.items():
            start = time.perf_counter()
            for _ in range(repeats[k]):
                sessions[k].run(None, case[3])
            times[k].append((time.perf_counter() - start) / repeats[k])
    best = {k: min(v) for k, v in times.items()}
    gemm = {k: c[4] / best[k] / 1e9 for k, c in cases.items() if c[0] == "gemm"}
    peak, matmul_peak = max(gemm.values()), max(v for k, v in gemm.items() if "conv" not in k)
    rows = []
    for k, (model, size, _, _, flops) in cases.items():
        gflops = flops / best[k] / 1e9
        rows.append({"case": k, "model": model, "size": size, "gflop": round(flops / 1e9, 3),
                     "best_ms": round(1e3 * best[k], 2), "median_ms": round(1e3 * float(np.median(times[k])), 2),
                     "gflop_per_s": round(gflops, 1), "fraction_of_peak": round(gflops / peak, 3),
                     "fraction_of_matmul_peak": round(gflops / matmul_peak, 3),
                     "threads": args.threads, "rounds": args.rounds, "calls_per_sample": repeats[k]})
        print("{:<48} {:8.1f} ms  {:6.1f} GFLOP/s  {:5.1%} of the GEMM peak".format(
            k, rows[-1]["best_ms"], gflops, gflops / peak))
    write_rows(args.output, list(rows[0]), rows, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
