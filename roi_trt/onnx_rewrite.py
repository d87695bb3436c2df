"""ONNX -> ONNX rewrites of exported transforms, with `onnx` alone (no torch, Python 3.6, onnx >= 1.11).

Runtimes differ in what they make of a GDN1 node backed by a model-local function (reference: TensorRT's
parser dispatch per version, ONNX Runtime 1.10), so each gets the form it handles:

- `standard_ops_model`: every GDN1 node lowered to `Abs -> Conv(1x1 gamma, beta) -> Mul` (with a
  `Reciprocal` for the forward direction), gamma folded into a constant 1x1 kernel. The result is what
  the local function computes, in the ops TensorRT 8.x and ONNX Runtime 1.10 know, with the constant
  weights TensorRT 8.2's Conv needs. Written by hand rather than with `onnx.inliner`, which onnx 1.11
  (the last release for JetPack 4.6's Python) does not have.
- `plugin_model`: the function bodies stripped, so TensorRT 9.0-10.6 cannot inline them and the GDN1
  nodes resolve to the registered plugin on every version.

And one rewrite for speed, whatever the GDN1 form: `polyphase_deconv_model` computes the decoder's
hidden transposed convolutions as plain convolutions, `transposed_deconv_model` undoes it;
`with_deconv` gives either form (`roi-trt export --deconv`, `roi-trt build --deconv`).
"""

import copy

import numpy as np

from onnx import helper, numpy_helper

from .spec import DECONV_FORMS, GDN1_DOMAIN, GDN1_INVERSE, GDN1_OP, GDN1_PLUGIN_NAMESPACE, GDN1_PLUGIN_VERSION

# IR 7 is the newest TensorRT 8.2's parser and ONNX Runtime 1.10 were built for; local functions need IR 8.
STANDARD_IR_VERSION = 7


def is_gdn1(node):
    return node.domain == GDN1_DOMAIN and node.op_type == GDN1_OP


def gdn1_node(x, gamma, beta, output, inverse):
    """The GDN1 node: `roi_trt::GDN1(x, gamma, beta)` with its `inverse` attribute and what onnx-tensorrt's
    plugin lookup reads (plugin_version, plugin_namespace); `output` names its result and the node."""
    return helper.make_node(GDN1_OP, [x, gamma, beta], [output], name=output, domain=GDN1_DOMAIN,
                            plugin_version=GDN1_PLUGIN_VERSION, plugin_namespace=GDN1_PLUGIN_NAMESPACE,
                            **{GDN1_INVERSE: int(inverse)})


def _inverse(node):
    for attr in node.attribute:
        if attr.name == GDN1_INVERSE:
            return bool(helper.get_attribute_value(attr))
    return False


def _lower(node, initializers, lowered_weights):
    """The standard-ops nodes of one GDN1 node; adds its 1x1 kernel to `lowered_weights`."""
    x, gamma_name, beta_name = node.input
    if gamma_name not in initializers or beta_name not in initializers:
        raise ValueError("GDN1 node {}: gamma and beta must be initializers".format(node.name))
    gamma = numpy_helper.to_array(initializers[gamma_name])
    kernel = gamma_name + "_1x1"
    lowered_weights.append(numpy_helper.from_array(gamma.reshape(gamma.shape + (1, 1)), kernel))
    base = node.name or node.output[0]
    abs_x, norm, y = base + "/abs", base + "/norm", node.output[0]
    nodes = [
        helper.make_node("Abs", [x], [abs_x], name=abs_x),
        helper.make_node("Conv", [abs_x, kernel, beta_name], [norm], name=norm),
    ]
    if _inverse(node):
        return nodes + [helper.make_node("Mul", [x, norm], [y], name=base + "/mul")]
    reciprocal = base + "/reciprocal"
    return nodes + [
        helper.make_node("Reciprocal", [norm], [reciprocal], name=reciprocal),
        helper.make_node("Mul", [x, reciprocal], [y], name=base + "/mul"),
    ]


def standard_ops_model(proto):
    """`proto` with every GDN1 node lowered to standard ONNX ops, no functions, no custom domain, IR 7."""
    model = copy.deepcopy(proto)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    lowered_weights, nodes = [], []
    for node in graph.node:
        nodes.extend(_lower(node, initializers, lowered_weights) if is_gdn1(node) else [node])
    replace_nodes(graph, nodes, lowered_weights)
    del model.functions[:]
    _keep_default_domain_only(model)
    model.ir_version = STANDARD_IR_VERSION
    return model


def plugin_model(proto):
    """`proto` without function bodies: each GDN1 node is left for TensorRT's plugin registry (IR 7)."""
    model = copy.deepcopy(proto)
    del model.functions[:]
    model.ir_version = STANDARD_IR_VERSION
    return model


def replace_nodes(graph, nodes, new_initializers):
    """Give `graph` these nodes, keep the initializers they still use, and add the new ones (also for
    benchmarks/roofline.py's variant)."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used] + new_initializers
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _keep_default_domain_only(model):
    keep = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    for o in keep:
        o.domain = ""  # TensorRT 8.2 rejects "ai.onnx" as the default domain's name
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _phase_taps(kernel, stride, pad):
    """Per output phase r: (the kernel taps it uses, in conv order, and its (begin, end) padding).

    A transposed convolution writes output o = stride * i - pad + k; the outputs with o = stride * m + r
    use the taps k = r + pad - stride * (i - m), so phase r is a plain convolution of the input.
    """
    phases = []
    for r in range(stride):
        taps = [k for k in range(kernel) if (k - r - pad) % stride == 0]
        offsets = [(r + pad - k) // stride for k in taps]  # input index i - m of each tap
        order = sorted(range(len(taps)), key=lambda t: offsets[t])  # conv order: ascending i
        phases.append(([taps[t] for t in order], (-min(offsets), max(offsets))))
    return phases


# Below this many output channels a transposed convolution stays as it is: ONNX Runtime's ConvTranspose
# is a GEMM into a column buffer of C_out x k x k rows, small for the image layer (3 channels), while Convs
# with 3 outputs miss its channel-blocked kernels (benchmarks/roofline.py, "image-layer-too": the whole
# synthesis 1.10x (128, 2) and 1.13x (256, 2) slower with its image layer in phases).
MIN_POLYPHASE_CHANNELS = 16


def _is_polyphase_candidate(node, attrs, initializers, min_channels):
    kernel, strides = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
    pads, output_padding = list(attrs.get("pads", [0, 0, 0, 0])), list(attrs.get("output_padding", [0, 0]))
    return (node.op_type == "ConvTranspose" and node.domain == "" and len(kernel) == 2 and kernel[0] == kernel[1] >= 3
            and strides == [2, 2] and len(set(pads)) == 1 and 2 * pads[0] + 1 == kernel[0]
            and output_padding == [1, 1] and attrs.get("group", 1) == 1
            and list(attrs.get("dilations", [1, 1])) == [1, 1]
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET") and "output_shape" not in attrs
            and node.input[1] in initializers and initializers[node.input[1]].dims[1] >= min_channels)


def _unused_name(name, taken):
    while name in taken:
        name += "_"
    return name


def polyphase_deconv_model(proto, min_channels=MIN_POLYPHASE_CHANNELS):
    """`proto` with every ConvTranspose of >= `min_channels` outputs (stride 2, 'same'-style padding,
    output_padding 1) computed as one Conv per output phase: the same values, in the form ONNX Runtime's
    CPU kernels run near their GEMM peak (its ConvTranspose writes and re-reads a column buffer of
    25 x C_out rows per input pixel).

    The phases are interleaved channel by channel (Unsqueeze + Concat on a new axis, so channel c's four
    phases are adjacent) and placed by a depthwise 2x2 stride-2 ConvTranspose with one-hot kernels: a
    copy, where Concat + DepthToSpace (the first polyphase export) moves one float at a time in ONNX
    Runtime's transpose (benchmarks/roofline.py, "depthtospace")."""
    model = copy.deepcopy(proto)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes, added = [], []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if not _is_polyphase_candidate(node, attrs, initializers, min_channels):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])  # [C_in, C_out, k, k]
        c_out, kernel, pad = weight.shape[1], attrs["kernel_shape"][0], attrs["pads"][0]
        bias = node.input[2:3]
        base = node.name or node.output[0]
        phases = _phase_taps(kernel, 2, pad)
        stacked = []
        for rh, (taps_h, pad_h) in enumerate(phases):
            for rw, (taps_w, pad_w) in enumerate(phases):
                w = weight[:, :, taps_h][:, :, :, taps_w].transpose(1, 0, 2, 3)  # [C_out, C_in, kh, kw]
                name = "{}/phase{}{}".format(base, rh, rw)
                added.append(numpy_helper.from_array(np.ascontiguousarray(w), name + ".weight"))
                nodes += [
                    helper.make_node("Conv", [node.input[0], name + ".weight"] + bias, [name], name=name,
                                     kernel_shape=list(w.shape[2:]), pads=[pad_h[0], pad_w[0], pad_h[1], pad_w[1]]),
                    helper.make_node("Unsqueeze", [name, base + "/axis2"], [name + "/u"], name=name + "/unsqueeze"),
                ]
                stacked.append(name + "/u")
        one_hot = np.zeros((4 * c_out, 1, 2, 2), weight.dtype)  # input channel 4c + 2rh + rw -> output (c, rh, rw)
        for phase in range(4):
            one_hot[phase::4, 0, phase // 2, phase % 2] = 1
        added += [
            numpy_helper.from_array(np.array([2], np.int64), base + "/axis2"),
            numpy_helper.from_array(np.array([0, 4 * c_out], np.int64), base + "/batch_channels"),
            numpy_helper.from_array(np.array([2], np.int64), base + "/hw_begin"),
            numpy_helper.from_array(np.array([4], np.int64), base + "/hw_end"),
            numpy_helper.from_array(one_hot, base + "/interleave.weight"),
        ]
        nodes += [
            helper.make_node("Concat", stacked, [base + "/phases"], name=base + "/concat", axis=2),  # [B, C, 4, H, W]
            helper.make_node("Shape", [node.input[0]], [base + "/shape"], name=base + "/shape"),
            helper.make_node("Slice", [base + "/shape", base + "/hw_begin", base + "/hw_end"], [base + "/hw"],
                             name=base + "/hw"),
            helper.make_node("Concat", [base + "/batch_channels", base + "/hw"], [base + "/flat_shape"],
                             name=base + "/flat_shape", axis=0),
            helper.make_node("Reshape", [base + "/phases", base + "/flat_shape"], [base + "/flat"],
                             name=base + "/flat"),
            helper.make_node("ConvTranspose", [base + "/flat", base + "/interleave.weight"], [node.output[0]],
                             name=base + "/interleave", kernel_shape=[2, 2], strides=[2, 2], group=c_out),
        ]
    replace_nodes(graph, nodes, added)
    return model


def transposed_deconv_model(proto):
    """The inverse of `polyphase_deconv_model` (also of the first polyphase exports, whose phases
    DepthToSpace placed): each group of phase Convs becomes one ConvTranspose again, with the original
    kernel bit for bit (a runtime may run the transposed form faster, e.g. TensorRT's fused
    deconvolution; `roi-trt build --deconv`)."""
    model = copy.deepcopy(proto)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    interleaves = {n.name[: -len("/interleave")]: n for n in graph.node
                   if n.op_type in ("ConvTranspose", "DepthToSpace") and n.name.endswith("/interleave")}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    nodes, added = [], []
    for node in graph.node:
        base = next((b for b in interleaves if node.name.startswith(b + "/")), None)
        if base is None:
            nodes.append(node)
            continue
        if node.name != base + "/phase00":
            continue  # the group's other nodes are replaced by the ConvTranspose written at its first phase
        names = ["{}/phase{}{}".format(base, rh, rw) for rh in range(2) for rw in range(2)]
        if not all(n in convs and convs[n].input[1] in initializers for n in names):
            raise ValueError("{}: not the four phase Convs polyphase_deconv_model writes".format(base))
        phases = [numpy_helper.to_array(initializers[convs[n].input[1]]) for n in names]
        kernel = phases[0].shape[2] + phases[3].shape[2]
        c_out, c_in = phases[0].shape[:2]
        weight = np.zeros((c_in, c_out, kernel, kernel), phases[0].dtype)
        taps = _phase_taps(kernel, 2, kernel // 2)
        for index, phase in enumerate(phases):
            taps_h, taps_w = taps[index // 2][0], taps[index % 2][0]
            for i, kh in enumerate(taps_h):
                for j, kw in enumerate(taps_w):
                    weight[:, :, kh, kw] = phase[:, :, i, j].T
        weight_name = _unused_name(base + ".weight", initializers)
        added.append(numpy_helper.from_array(weight, weight_name))
        nodes.append(helper.make_node("ConvTranspose", [node.input[0], weight_name] + list(node.input[2:3]),
                                      list(interleaves[base].output), name=base, kernel_shape=[kernel, kernel],
                                      strides=[2, 2], pads=[kernel // 2] * 4, output_padding=[1, 1]))
    if any(n.op_type == "Conv" and "/phase" in n.name for n in nodes):
        raise ValueError("phase Convs without their interleave: not a graph polyphase_deconv_model wrote")
    replace_nodes(graph, nodes, added)
    return model


def with_deconv(proto, form):
    """`proto` with its transposed convolutions in `form` (one of DECONV_FORMS), whichever form it had."""
    if form not in DECONV_FORMS:
        raise ValueError("deconv must be one of {}, got {!r}".format(", ".join(DECONV_FORMS), form))
    return polyphase_deconv_model(proto) if form == "polyphase" else transposed_deconv_model(proto)
