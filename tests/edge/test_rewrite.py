"""The ONNX rewrites run where the Nano builds its engines: onnx alone (1.11 under Python 3.6), no torch."""

import os

import numpy as np
import onnx
import pytest

from roi_trt.onnx_rewrite import is_gdn1, plugin_model, standard_ops_model


@pytest.mark.parametrize("part, shape", [("encoder", (1, 3, 48, 64)), ("decoder", (1, 128, 3, 4))])
def test_standard_ops_rewrite_equals_the_exported_standard_ops_file(export_dir, part, shape):
    import onnxruntime as ort

    proto = onnx.load(os.path.join(export_dir, part + ".onnx"))
    rewritten = standard_ops_model(proto)
    onnx.checker.check_model(rewritten)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    outputs = []
    for model in (rewritten, onnx.load(os.path.join(export_dir, part + ".std.onnx"))):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert len([n for n in plugin_model(proto).graph.node if is_gdn1(n)]) == 3
