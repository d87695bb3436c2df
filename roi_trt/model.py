"""The paper's autoencoder: Ballé's factorized prior with GDN1, built from CompressAI parts.

Attribute names (`_encoder.encoder`, `_decoder.decoder`, `_bottleneck`) follow the reference
training code so its state dicts load without renaming.
"""

import hashlib

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN1
from compressai.models.utils import conv, deconv
from torch import nn

from . import spec
from .artifacts import EntropyTables
from .pretrained import RELEASES, configuration

PAPER_CONFIGS = tuple(configuration(name)[:2] for name in RELEASES if configuration(name)[2] == "zip")  # (N, M)


class Encoder(nn.Module):
    def __init__(self, N, M):
        super().__init__()
        layers = [conv(3, N), GDN1(N)]
        for _ in range(M):
            layers += [conv(N, N), GDN1(N)]
        layers.append(conv(N, N))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x):
        return self.encoder(x)


class Decoder(nn.Module):
    def __init__(self, N, M):
        super().__init__()
        layers = [deconv(N, N), GDN1(N, inverse=True)]
        for _ in range(M):
            layers += [deconv(N, N), GDN1(N, inverse=True)]
        layers += [deconv(N, 3), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, y_hat):
        return self.decoder(y_hat)


class RoiAutoencoder(nn.Module):
    """Analysis transform, entropy bottleneck, synthesis transform; images are RGB in [0, 1]."""

    def __init__(self, N=128, M=2):
        super().__init__()
        self.N, self.M = int(N), int(M)
        self._encoder = Encoder(self.N, self.M)
        self._decoder = Decoder(self.N, self.M)
        self._bottleneck = EntropyBottleneck(self.N)

    @property
    def downsampling(self):
        return spec.downsampling(self.M)

    def forward(self, x):
        """Training pass: reconstruction and the latent likelihoods (for the rate term)."""
        y = self._encoder(x)
        y_hat, likelihoods = self._bottleneck(y)
        return self._decoder(y_hat), likelihoods

    def gdn_layers(self):
        """(name, GDN1) pairs in graph order, encoder first."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, GDN1)]


def effective_gdn_params(gdn):
    """GDN1's stored parameters are re-parametrized; deployment needs the values actually applied."""
    with torch.no_grad():
        return gdn.gamma_reparam(gdn.gamma).clone(), gdn.beta_reparam(gdn.beta).clone()


def fingerprint(model):
    """SHA-256 over every tensor of the state dict (name, dtype, shape, bytes), keys sorted.

    Covers the transforms and the entropy tables, so a bitstream can be tied to the exact model.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def entropy_tables(eb):
    """The EntropyBottleneck's coding tables, as the torch-free runtime reads them."""
    return EntropyTables(
        eb._quantized_cdf.numpy(), eb._cdf_length.numpy(), eb._offset.numpy(), eb.quantiles[:, 0, 1].detach().numpy()
    )
