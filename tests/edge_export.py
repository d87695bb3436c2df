"""The export the edge suite runs on (made with torch; Python 3.11 side only)."""

import os


def make_edge_export(out):
    from helpers import make_model
    from roi_trt.checkpoint import CheckpointInfo
    from roi_trt.export import export_model

    model = make_model(128, 2, seed=7)
    export_model(model, CheckpointInfo("edge.pt", "reference", "zip", "", 128, 2, "file"), out)
    return os.path.abspath(out)
