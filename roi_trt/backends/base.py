"""The backend interface: the two transforms, numpy in and out (host memory on both sides)."""


class Backend(object):
    """Runs the analysis and synthesis transforms of one model.

    Arrays are float32 NCHW in host memory, so timings of `analysis`/`synthesis` include any
    host<->device copies, as the paper's protocol requires.
    """

    name = "base"

    @property
    def device(self):
        """Human-readable execution device (for reports)."""
        raise NotImplementedError

    def analysis(self, x):
        """image [B, 3, H, W] in [0, 1] (H, W multiples of the downsampling) -> latent [B, N, H/d, W/d]."""
        raise NotImplementedError

    def synthesis(self, y_hat):
        """dequantized latent [B, N, h, w] -> image [B, 3, h*d, w*d] in [0, 1]."""
        raise NotImplementedError
