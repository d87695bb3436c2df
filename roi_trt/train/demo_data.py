"""The demo checkpoint's training data: sample photos shipped by scikit-image and matplotlib.

Head boxes were produced once by `python -m roi_trt.train.demo_data --annotate` (MTCNN from
facenet-pytorch, face boxes widened to head boxes); person boxes were drawn by hand, because OpenCV's HOG
pedestrian detector finds none of these upper-body portraits and fires on background. Both are committed
in `roi_trt/data/demo_annotations.odgt`; `write_dataset` lays the photos out as CrowdHuman is distributed,
so the demo is trained through the same loader as real data.
"""

import argparse
import importlib.util
import json
import os
import shutil

from ..imageio import load_rgb
from ..store import DATA_DIR

ANNOTATIONS = os.path.join(DATA_DIR, "demo_annotations.odgt")
# (ID, package, path inside the package)
PHOTOS = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("camera", "skimage", "data/camera.png"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("motorcycle", "skimage", "data/motorcycle_left.png"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("hubble", "skimage", "data/hubble_deep_field.jpg"),
    ("coins", "skimage", "data/coins.png"),
    ("brick", "skimage", "data/brick.png"),
    ("gravel", "skimage", "data/gravel.png"),
    ("ihc", "skimage", "data/ihc.png"),
)


def photo_path(package, relative):
    spec = importlib.util.find_spec(package)
    return os.path.join(list(spec.submodule_search_locations)[0], relative)


def write_dataset(out_dir):
    """Write `<ID>.jpg` (quality 95) and `annotation_train.odgt`; returns (image dir, annotation path)."""
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    for image_id, package, relative in PHOTOS:
        rgb, _ = load_rgb(photo_path(package, relative))
        Image.fromarray(rgb).save(os.path.join(out_dir, image_id + ".jpg"), quality=95)
    annotations = os.path.join(out_dir, "annotation_train.odgt")
    shutil.copyfile(ANNOTATIONS, annotations)
    return out_dir, annotations


def _head_box(face):
    """MTCNN boxes the face; CrowdHuman's hbox covers the whole head: widen and raise it."""
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    return [x0 - 0.2 * w, y0 - 0.45 * h, 1.4 * w, 1.6 * h]


def annotate():
    """Detect faces with MTCNN on the demo photos -> {ID: [head boxes as x, y, w, h]}."""
    import torch
    from facenet_pytorch import MTCNN

    torch.manual_seed(0)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    heads = {}
    for image_id, package, relative in PHOTOS:
        rgb, _ = load_rgb(photo_path(package, relative))
        faces, probs = mtcnn.detect(rgb)
        found = [] if faces is None else [f for f, p in zip(faces, probs) if p >= 0.95]
        heads[image_id] = [[round(float(v), 1) for v in _head_box(f)] for f in found]
    return heads


def pack(trained, out, recipe):
    """Ship `trained` small: weights rounded to float16 (half the size), entropy tables rebuilt for
    exactly those weights, no optimizer state. Loading casts back to float32 without loss."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..fileio import atomic_output

    model, _ = load_checkpoint(trained)
    with torch.no_grad():
        for tensor in list(model.parameters()):
            tensor.copy_(tensor.half().float())
    model._bottleneck.update(force=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    with atomic_output(out) as tmp:
        torch.save({"state_dict": state, "N": model.N, "M": model.M, "recipe": recipe}, tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Make the demo checkpoint's data (head boxes) and package it.")
    parser.add_argument("--annotate", action="store_true", help="print MTCNN head boxes per photo as JSON")
    parser.add_argument("--pack", nargs=2, metavar=("TRAINED", "OUT"), help="write the shippable checkpoint")
    parser.add_argument("--recipe", default="", help="the training commands, stored in the packed file")
    args = parser.parse_args(argv)
    if args.annotate:
        print(json.dumps(annotate(), indent=1))
    if args.pack:
        pack(args.pack[0], args.pack[1], args.recipe)


if __name__ == "__main__":
    main()
