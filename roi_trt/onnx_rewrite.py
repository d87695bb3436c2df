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
"""

import copy

from onnx import helper, numpy_helper

from .spec import GDN1_DOMAIN, GDN1_INVERSE, GDN1_OP

# IR 7 is the newest TensorRT 8.2's parser and ONNX Runtime 1.10 were built for; local functions need IR 8.
STANDARD_IR_VERSION = 7


def is_gdn1(node):
    return node.domain == GDN1_DOMAIN and node.op_type == GDN1_OP


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
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used] + lowered_weights
    del graph.initializer[:]
    graph.initializer.extend(kept)
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


def _keep_default_domain_only(model):
    keep = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    for o in keep:
        o.domain = ""  # TensorRT 8.2 rejects "ai.onnx" as the default domain's name
    del model.opset_import[:]
    model.opset_import.extend(keep)

