"""Lay out the committed precision run's photos as CrowdHuman is distributed: `<ID>.<suffix>` in one
directory, matching `benchmarks/data/precision_gt.odgt` (hand-made ground truth).

- the four bundled photos (`roi_trt/data/photos`: astronaut, coffee, chelsea, grace_hopper; the demo
  model was trained on them);
- 24 faces the demo never saw: scikit-image's `lfw_subset` faces 0-23 (25 x 25 grey crops from Labeled
  Faces in the Wild), upscaled to 160 x 160 (bicubic) and pasted at (48, 48) on a 256 x 256 background
  (the LFW background patch of the same index, 100 + i, upscaled); their head and person boxes are the
  pasted face, [48, 48, 160, 160];
- three scikit-image photos without people (grass, moon, horse), also unseen: false positives only.

Deterministic: the same files from the same scikit-image data. Usage: python precision_photos.py OUTDIR
"""

import os
import shutil
import sys

import numpy as np
from PIL import Image

LFW_FACES = 24
FACE, OFFSET, SIDE = 160, 48, 256
NEGATIVES = ("grass", "moon", "horse")


def _u8(a):
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def lfw_photo(faces, i):
    background = np.array(Image.fromarray(_u8(faces[100 + i])).resize((SIDE, SIDE), Image.BICUBIC))
    background[OFFSET:OFFSET + FACE, OFFSET:OFFSET + FACE] = np.asarray(
        Image.fromarray(_u8(faces[i])).resize((FACE, FACE), Image.BICUBIC))
    return np.stack([background] * 3, axis=-1)


def main(out):
    import skimage.data

    from roi_trt.samples import sample_photos

    os.makedirs(out, exist_ok=True)
    for path in sample_photos():
        shutil.copyfile(path, os.path.join(out, os.path.basename(path)))
    faces = skimage.data.lfw_subset()
    for i in range(LFW_FACES):
        Image.fromarray(lfw_photo(faces, i)).save(os.path.join(out, "lfw_{:02d}.png".format(i)))
    for name in NEGATIVES:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(os.path.join(out, name + ".png"))
    return out


if __name__ == "__main__":
    main(sys.argv[1])
