"""Build targets: the GPU an engine is built on and for (engines are not portable), its TensorRT
releases, workspace limit and default optimization profiles.

Profiles are given for the image; the decoder's follow from them (latent = image / downsampling, N
channels). The smallest input is one latent unit, so the codec's edge tiles fit; the largest covers
the codec's default tiles (a 256 MiB working-memory budget gives tiles of at most 720 pixels).
"""

import collections

from .. import spec
from ..backends.tensorrt.api import shape_text
from ..cuda import cc_text
from ..errors import BuildError

Target = collections.namedtuple("Target", "name compute_capability workspace_bytes tensorrt_majors opt_image max_image")
Profile = collections.namedtuple("Profile", "min opt max")  # NCHW shapes of the engine's input

MiB = 1 << 20
TARGETS = {
    # Jetson Nano: Maxwell sm_53, 4 GB shared by CPU and GPU, JetPack 4.6.x (TensorRT 8.0.1 / 8.2.1)
    "nano": Target("nano", (5, 3), 256 * MiB, (8,), (1, 512, 512), (1, 768, 768)),
    "a100": Target("a100", (8, 0), 4096 * MiB, (10, 11), (1, 512, 512), (4, 2048, 2048)),
    "h100": Target("h100", (9, 0), 4096 * MiB, (10, 11), (1, 512, 512), (4, 2048, 2048)),
}
NAMES = tuple(sorted(TARGETS)) + ("auto",)


def resolve(name, compute_capability):
    """The target `name` for the GPU at hand (compute capability (major, minor)); `auto` picks by it."""
    if name == "auto":
        for target in TARGETS.values():
            if target.compute_capability == tuple(compute_capability):
                return target
        known = ", ".join("{} {}".format(t.name, cc_text(t.compute_capability)) for t in TARGETS.values())
        raise BuildError("no build target for compute capability {} (known: {})".format(
            cc_text(compute_capability), known))
    if name not in TARGETS:
        raise BuildError("unknown target {!r} (choose from {})".format(name, ", ".join(NAMES)))
    target = TARGETS[name]
    if target.compute_capability != tuple(compute_capability):
        raise BuildError("target {} is compute capability {}, this GPU is {}: engines run only on the kind of GPU "
                         "they were built on, so build on the target itself".format(
                             name, cc_text(target.compute_capability), cc_text(compute_capability)))
    return target


def check_tensorrt(target, version):
    """Refuse TensorRT majors the target is not made for (the Nano cannot leave 8.x; servers use 10/11)."""
    if version[0] not in target.tensorrt_majors:
        raise BuildError("target {} supports TensorRT {}, this is {}".format(
            target.name, "/".join("{}.x".format(m) for m in target.tensorrt_majors), ".".join(str(v) for v in version)))


def input_shape(part, image, N, M):
    """NCHW input of `part` for an image of (batch, height, width)."""
    batch, height, width = image
    if part == "encoder":
        return batch, 3, height, width
    d = spec.downsampling(M)
    return batch, N, height // d, width // d


def default_profile(target, part, N, M):
    """min (one latent unit), opt and max input shapes of `part` on `target`."""
    d = spec.downsampling(M)
    images = (1, d, d), target.opt_image, target.max_image
    return Profile(*(input_shape(part, image, N, M) for image in images))


def check_profile(profile, part, N, M):
    """Profile of NCHW shapes -> Profile of int tuples, or BuildError saying what is wrong."""
    try:
        profile = Profile(*(tuple(int(v) for v in shape) for shape in profile))
    except (TypeError, ValueError):
        raise BuildError("a profile is three NCHW shapes (min, opt, max), got {!r}".format(profile)) from None
    channels = 3 if part == "encoder" else N
    multiple = spec.downsampling(M) if part == "encoder" else 1
    for label, shape in zip(Profile._fields, profile):
        if len(shape) != 4 or shape[1] != channels or min(shape) < 1:
            raise BuildError("{} profile {} shape {} is not Nx{}xHxW".format(part, label, shape_text(shape), channels))
        if shape[2] % multiple or shape[3] % multiple:
            raise BuildError("{} profile {} shape {}: height and width must be multiples of {}".format(
                part, label, shape_text(shape), multiple))
    if any(a > b for lo, hi in zip(profile, profile[1:]) for a, b in zip(lo, hi)):
        raise BuildError("{} profile must have min <= opt <= max in every dimension, got {}".format(
            part, " / ".join(shape_text(s) for s in profile)))
    return profile
