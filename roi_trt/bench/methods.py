"""The methods the latency harness times, all behind one shape: prepare (untimed), encode, decode.

- `RoiCodecMethod`: our codec (a backend's transforms + our rANS coder), as deployed.
- `PaperTorchMethod`: the paper's own pipeline, PyTorch eager + CompressAI's EntropyBottleneck.
- `PillowCodecMethod`: JPEG / AVIF through Pillow; decode forces a full pixel decode (`load()`).

Encode and decode include every host<->device copy; decode returns uint8 HxWx3 host pixels.
"""

import io

import numpy as np

from ..imageio import to_nchw, to_rgb8
from ..optional import require


class Method(object):
    method = config = backend = device = None

    def prepare(self, rgb):
        """uint8 HxWx3 -> whatever encode() takes (conversion is not timed, as in the paper)."""
        raise NotImplementedError

    def encode(self, prepared):
        """-> (bytes payload, opaque decode input)."""
        raise NotImplementedError

    def decode(self, encoded):
        raise NotImplementedError


def _config(model):
    return "{}-{}".format(model.N, model.M)


class RoiCodecMethod(Method):
    method = "roi-codec"

    def __init__(self, codec):
        self.codec, self.config = codec, _config(codec.model)
        self.backend, self.device = codec.backend.label, codec.backend.device

    def prepare(self, rgb):
        return self.codec.prepare(rgb)

    def encode(self, frame):
        data, _ = self.codec.finish_encode(frame, self.codec.analyze(frame)[0])
        return data, data

    def decode(self, data):
        return self.codec.decode(data)[0]


class PaperTorchMethod(Method):
    """`bottleneck.compress(encoder(x))` and `decoder(bottleneck.decompress(...))`, as the paper timed."""

    method = "roi-codec"
    backend = "torch-compressai"

    def __init__(self, model, device="cpu", threads=None):
        """`model`: a resolved model (store.resolve) that has torch weights."""
        torch = self.torch = require("torch", "the paper's torch pipeline")
        if threads:
            torch.set_num_threads(threads)
        self._device = torch.device(device)
        self.device = str(self._device)
        if self._device.type == "cuda":
            from ..backends.torch import strict_fp32

            strict_fp32(torch)
        self.model = model.torch_model().to(self._device).eval()
        self.config = _config(self.model)

    def prepare(self, rgb):
        return self.torch.from_numpy(to_nchw(rgb)).to(self._device)

    def encode(self, x):
        with self.torch.no_grad():
            y = self.model._encoder(x)
            strings = self.model._bottleneck.compress(y)  # moves symbols to the host internally
        return strings[0], (strings, tuple(y.shape[-2:]))

    def decode(self, encoded):
        strings, latent_hw = encoded
        with self.torch.no_grad():
            x_hat = self.model._decoder(self.model._bottleneck.decompress(strings, latent_hw))
            return to_rgb8(x_hat.cpu().numpy())


class PillowCodecMethod(Method):
    backend = "pillow"
    device = "cpu"
    FORMATS = {"jpeg": "JPEG", "avif": "AVIF"}

    def __init__(self, codec, quality):
        from PIL import features

        if codec == "avif" and not features.check("avif"):
            raise RuntimeError("this Pillow has no AVIF support (Pillow >= 11.3 with libavif)")
        self.method, self.config = codec, "q{}".format(quality)
        self.format, self.quality = self.FORMATS[codec], int(quality)

    def prepare(self, rgb):
        from PIL import Image

        return Image.fromarray(rgb)

    def encode(self, image):
        buf = io.BytesIO()
        image.save(buf, format=self.format, quality=self.quality)
        data = buf.getvalue()
        return data, data

    def decode(self, data):
        from PIL import Image

        img = Image.open(io.BytesIO(data))
        img.load()  # Image.open alone reads only the header
        return np.asarray(img)
