"""Model facts every side needs, and the paper's training recipe, torch-free (Python 3.6): the one home of
each of them.

The torch model, the ONNX graphs, the TensorRT plugin, the bitstream and the codec all import these
instead of restating them.
"""

from collections import namedtuple

# The two transforms of the autoencoder, by the names every layer uses (ONNX files, engines, backends).
PARTS = ("encoder", "decoder")

# CompressAI's rANS probability precision (bits); the entropy tables and the coder both use it.
CDF_PRECISION = 16

# The GDN1 layer as one ONNX node and one TensorRT plugin: `GDN1(x, gamma [C, C], beta [C])` with
# integer attribute `inverse` (0: divide, 1: multiply). onnx-tensorrt looks the plugin up by op type,
# `plugin_version` and `plugin_namespace`; the namespace is also the ONNX domain.
GDN1_DOMAIN = "roi_trt"
GDN1_OP = "GDN1"
GDN1_PLUGIN_VERSION = "1"
GDN1_PLUGIN_NAMESPACE = GDN1_DOMAIN
GDN1_INVERSE = "inverse"

# A stream names its model by the first bytes of the model's SHA-256 fingerprint.
STREAM_FINGERPRINT_BYTES = 8


def downsampling(M):
    """Resolution factor of the transforms: every conv halves it, M hidden layers plus the first and last."""
    return 2 ** (M + 2)


def latent_size(height, width, M):
    """Latent (h, w) of an image: it is padded up to multiples of the downsampling factor first."""
    d = downsampling(M)
    return -(-height // d), -(-width // d)


def stream_fingerprint(fingerprint_hex):
    """What a stream carries of a model's hex SHA-256 fingerprint."""
    return bytes.fromhex(fingerprint_hex)[:STREAM_FINGERPRINT_BYTES]

# How an export's decoder computes its transposed convolutions (onnx_rewrite.with_deconv): in phases, as
# ONNX Runtime runs them fastest (exports' default), or as ConvTranspose. TensorRT builds take the
# transposed form unless told otherwise: one fused deconvolution layer each, where the phases add a
# concat and a reshape per layer; not yet measured on a GPU (`roi-trt build --deconv` builds either).
DECONV_FORMS = ("polyphase", "convtranspose")
EXPORT_DECONV = "polyphase"
TENSORRT_DECONV = "convtranspose"

# An export, or an engine, agrees with its reference when at least this share of the quantized latent's
# symbols is equal (float rounding may move a value across a rounding boundary, rarely).
MIN_SYMBOL_AGREEMENT = 0.9999

# The paper's loss, L = rate * R + background * MSE + hbox * L1(head boxes) + vbox * L0(person boxes), and
# its training: images resized to size x size in batches, Adam (lr) on the transforms and a second Adam
# (aux_lr) on the bottleneck's quantiles for its auxiliary loss.
LossWeights = namedtuple("LossWeights", "rate background hbox vbox")
PAPER_LOSS_WEIGHTS = LossWeights(rate=0.04, background=1.0, hbox=0.6, vbox=1.0)
PaperTraining = namedtuple("PaperTraining", "size batch_size lr aux_lr")
PAPER_TRAINING = PaperTraining(size=512, batch_size=14, lr=1e-4, aux_lr=1e-3)
