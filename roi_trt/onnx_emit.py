"""ONNX graphs of the analysis and synthesis transforms, emitted from the torch model's weights.

The architecture is fixed (5x5 stride-2 convolutions with GDN1 between them, N and M its only parameters),
so the graph is written node by node instead of traced:
dimensions stay symbolic, each GDN1 layer is exactly one custom node, and the output does not depend on
the behaviour of a particular `torch.onnx` release.

A GDN1 node (`roi_trt::GDN1`, inputs x, gamma [C, C], beta [C], attribute `inverse`) carries TensorRT's
plugin lookup attributes (`plugin_version`, `plugin_namespace`) and is backed by a model-local function
with the same op in standard ONNX ops, so function-aware runtimes execute the file as it is.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .model import effective_gdn_params
from .onnx_rewrite import gdn1_node
from .spec import GDN1_DOMAIN, GDN1_INVERSE, GDN1_OP

FUNCTION_IR_VERSION = 8  # model-local functions need IR 8


def gdn1_function(opset):
    """y = x / (beta + conv1x1(|x|, gamma)), or x * (...) when `inverse` is 1; mirrors compressai's GDN1."""
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["x", "norm"], ["y_inverse"])],
        "inverse",
        [],
        [helper.make_tensor_value_info("y_inverse", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node("Reciprocal", ["norm"], ["inv_norm"]),
            helper.make_node("Mul", ["x", "inv_norm"], ["y_forward"]),
        ],
        "forward",
        [],
        [helper.make_tensor_value_info("y_forward", TensorProto.FLOAT, None)],
    )
    inverse_attr = helper.make_attribute_ref("value_int", onnx.AttributeProto.INT)
    inverse_attr.ref_attr_name = GDN1_INVERSE
    inverse_const = helper.make_node("Constant", [], ["inverse_int"])
    inverse_const.attribute.append(inverse_attr)
    nodes = [
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([2, 3], np.int64))),
        helper.make_node("Unsqueeze", ["gamma", "axes"], ["weight"]),
        helper.make_node("Abs", ["x"], ["abs_x"]),
        helper.make_node("Conv", ["abs_x", "weight", "beta"], ["norm"]),
        inverse_const,
        helper.make_node("Cast", ["inverse_int"], ["is_inverse"], to=TensorProto.BOOL),
        helper.make_node("If", ["is_inverse"], ["y"], then_branch=then_branch, else_branch=else_branch),
    ]
    return helper.make_function(
        GDN1_DOMAIN,
        GDN1_OP,
        inputs=["x", "gamma", "beta"],
        outputs=["y"],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=[GDN1_INVERSE],
    )


class _GraphBuilder:
    def __init__(self, prefix):
        self.prefix = prefix
        self.nodes, self.initializers = [], []
        self.count = 0

    def weight(self, name, array):
        full = f"{self.prefix}.{name}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), full))
        return full

    def node(self, op, inputs, domain="", **attrs):
        self.count += 1
        out = f"{self.prefix}.{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def layer(self, name, module, x):
        """One torch layer of the Sequential as ONNX node(s)."""
        from compressai.layers import GDN1
        from torch import nn

        if isinstance(module, nn.Conv2d):
            return self._conv("Conv", name, module, x)
        if isinstance(module, nn.ConvTranspose2d):
            return self._conv("ConvTranspose", name, module, x, output_padding=list(module.output_padding))
        if isinstance(module, GDN1):
            gamma, beta = effective_gdn_params(module)
            self.count += 1
            out = f"{self.prefix}.{GDN1_OP.lower()}{self.count}"
            self.nodes.append(gdn1_node(x, self.weight(f"{name}.gamma", gamma.numpy()),
                                        self.weight(f"{name}.beta", beta.numpy()), out, module.inverse))
            return out
        if isinstance(module, nn.Sigmoid):
            return self.node("Sigmoid", [x])
        raise TypeError(f"no ONNX mapping for {type(module).__name__}")

    def _conv(self, op, name, module, x, **extra):
        w = self.weight(f"{name}.weight", module.weight.detach().numpy())
        b = self.weight(f"{name}.bias", module.bias.detach().numpy())
        p = list(module.padding)
        return self.node(
            op, [x, w, b], kernel_shape=list(module.kernel_size), strides=list(module.stride), pads=p + p, **extra
        )


def _transform_graph(name, sequential, input_name, input_shape, output_name, output_shape):
    builder = _GraphBuilder(name)
    x = input_name
    for index, module in enumerate(sequential):
        x = builder.layer(str(index), module, x)
    builder.nodes[-1].output[0] = output_name
    return helper.make_graph(
        builder.nodes,
        name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)],
        initializer=builder.initializers,
    )


def transform_models(model, opset, shape=None):
    """-> (encoder ModelProto, decoder ModelProto), GDN1 as custom nodes with local functions.

    `shape` = (batch, height, width) fixes every dimension; None keeps them symbolic.
    """
    N, d = model.N, model.downsampling
    if shape is None:
        image = ["batch", 3, "height", "width"]
        latent = ["batch", N, "latent_height", "latent_width"]
    else:
        batch, height, width = shape
        image = [batch, 3, height, width]
        latent = [batch, N, height // d, width // d]
    graphs = (
        _transform_graph("encoder", model._encoder.encoder, "image", image, "latent", latent),
        _transform_graph("decoder", model._decoder.decoder, "latent_hat", latent, "image", image),
    )
    models = []
    for graph in graphs:
        proto = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(GDN1_DOMAIN, 1)],
            functions=[gdn1_function(opset)],
            producer_name="roi-trt",
            ir_version=FUNCTION_IR_VERSION,
        )
        models.append(proto)
    return tuple(models)

