"""Build targets: the GPU an engine is built on and for (engines are not portable), the TensorRT releases
it supports, its workspace limit and default optimization profiles.

Profiles are given for the image; the decoder's follow from them (latent = image / downsampling, N
channels). The smallest input is one latent unit, so every edge tile fits. The largest decides what an
execution context reserves for activations (TensorRT plans them for the profile's largest input; the
sidecar records TensorRT's own figure), so each target's is sized for the frames it serves: a Jetson one
camera frame (larger ones run in tiles), a server a batch of four 1080p frames (a 4K frame as tiles): half
the pixels of the 4 x 2048 x 2048 profile servers had before (TensorRT's own figure for each engine is in
its sidecar; none has been measured yet). TensorRT tunes its kernels for `opt`: the paper's
512 x 512 frames, so engines time Tab. II/III's protocol at their best.
"""

import collections

from .. import spec
from ..backends.tensorrt.api import shape_text
from ..cuda import cc_text
from ..errors import BuildError

# compute_capabilities: the GPUs it is for; jetson: an integrated GPU sharing the host's memory, chosen by
# `auto` only for exactly its own compute capabilities; tensorrt: (oldest release, newest major) supported
Target = collections.namedtuple("Target", "name compute_capabilities jetson tensorrt workspace_bytes opt_image max_image")
Profile = collections.namedtuple("Profile", "min opt max")  # NCHW shapes of the engine's input

MiB = 1 << 20
FRAME_1080P = (1088, 1920)  # 1080p padded to multiples of 16 (and of 8, 32)
_PAPER_FRAME = (1, 512, 512)
_SERVER_MAX = (4,) + FRAME_1080P
TARGETS = collections.OrderedDict((t.name, t) for t in (
    # Jetson Nano: Maxwell, 4 GB shared by CPU and GPU, JetPack 4.6.x (TensorRT 8.0.1 / 8.2.1)
    Target("nano", ((5, 3),), True, ((8, 0), 8), 256 * MiB, _PAPER_FRAME, (1, 768, 768)),
    # Jetson Orin (AGX, NX, Nano; 8-64 GB shared): JetPack 5.1 (TensorRT 8.5), 6.0 (8.6), 6.1/6.2 (10.3)
    Target("orin", ((8, 7),), True, ((8, 5), 10), 1024 * MiB, _PAPER_FRAME, (1,) + FRAME_1080P),
    Target("a100", ((8, 0),), False, ((8, 0), 11), 4096 * MiB, _PAPER_FRAME, _SERVER_MAX),
    # Ada: L4, L40, RTX 4090 (TensorRT supports it from 8.5)
    Target("ada", ((8, 9),), False, ((8, 5), 11), 4096 * MiB, _PAPER_FRAME, _SERVER_MAX),
    Target("h100", ((9, 0),), False, ((8, 5), 11), 4096 * MiB, _PAPER_FRAME, _SERVER_MAX),
    # Blackwell: B200/GB200 (10.0), B300 (10.3), RTX 50 and RTX PRO (12.0), GB10 (12.1); TensorRT from 10.8
    Target("blackwell", ((10, 0), (10, 3), (12, 0), (12, 1)), False, ((10, 8), 11), 4096 * MiB, _PAPER_FRAME,
           _SERVER_MAX),
))
# Any other GPU: an FP32 build with moderate settings, never a refusal.
GENERIC = Target("generic", (), False, ((8, 0), 11), 1024 * MiB, _PAPER_FRAME, (1,) + FRAME_1080P)
NAMES = tuple(TARGETS) + (GENERIC.name, "auto")


def _describe(target):
    return "{} ({})".format(target.name, ", ".join(cc_text(cc) for cc in target.compute_capabilities) or "any GPU")


def auto(compute_capability):
    """-> (target, why): the target of a GPU's compute capability: its own, else the discrete-GPU target
    of the same major with the nearest minor, else the generic one."""
    cc = tuple(compute_capability)
    for target in TARGETS.values():
        if cc in target.compute_capabilities:
            return target, "compute capability {} is target {}".format(cc_text(cc), target.name)
    near = [(abs(other[1] - cc[1]), other, t) for t in TARGETS.values() if not t.jetson
            for other in t.compute_capabilities if other[0] == cc[0]]
    if near:
        _, other, target = min(near)
        return target, "compute capability {} has no target of its own: using {}, the nearest of its generation " \
                       "({})".format(cc_text(cc), target.name, cc_text(other))
    return GENERIC, "warning: compute capability {} has no tested target: a generic FP32 build (workspace {} MiB, " \
                    "profile up to {}); --target chooses another".format(
                        cc_text(cc), GENERIC.workspace_bytes // MiB, shape_text(GENERIC.max_image))


def resolve(name, compute_capability):
    """-> (target, why or None) for the GPU at hand (compute capability (major, minor)): `auto` picks by it
    (see `auto`); a named target must be that kind of GPU (engines run only where they were built)."""
    if name == "auto":
        return auto(compute_capability)
    if name == GENERIC.name:
        return GENERIC, None
    if name not in TARGETS:
        raise BuildError("unknown target {!r} (choose from {})".format(name, ", ".join(NAMES)))
    target = TARGETS[name]
    if tuple(compute_capability) not in target.compute_capabilities:
        raise BuildError("target {} is compute capability {}, this GPU is {}: engines run only on the kind of GPU "
                         "they were built on, so build on the target itself (or --target auto)".format(
                             name, "/".join(cc_text(cc) for cc in target.compute_capabilities),
                             cc_text(compute_capability)))
    return target, None


def tensorrt_text(target):
    oldest, newest_major = target.tensorrt
    return "TensorRT {} to {}.x".format(".".join(str(v) for v in oldest), newest_major)


def supports_tensorrt(target, version):
    oldest, newest_major = target.tensorrt
    return tuple(version[:len(oldest)]) >= oldest and version[0] <= newest_major


def check_tensorrt(target, version):
    """Refuse TensorRT releases the target cannot use (the Nano cannot leave 8.x; Blackwell needs 10.8)."""
    if not supports_tensorrt(target, version):
        raise BuildError("target {} supports {}, this is {}".format(
            target.name, tensorrt_text(target), ".".join(str(v) for v in version)))


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
