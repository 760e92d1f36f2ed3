"""Networks: plain ``torch.nn.Module`` s that return distribution parameters and know nothing about
Pyro (the stories in :mod:`probgen.models` give them meaning).

- :mod:`~probgen.nn.mlp`: MLPs, Gaussian heads, the VAE encoder/decoder pair (:func:`encoder_decoder`),
  small conv encoders/decoders, argument checks;
- :mod:`~probgen.nn.autoregressive`: masked convolutions, gated PixelCNN blocks, the Row LSTM;
- :mod:`~probgen.nn.adversarial`: GAN generators and discriminators (MLP and DCGAN), the names of
  the adversarial objectives (:data:`LOSSES`, :func:`check_loss`);
- :mod:`~probgen.nn.recurrent`: the GRU sentence encoder and decoder.
"""
from __future__ import annotations

from .adversarial import (LOSSES, OUTPUTS, ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator,
                          check_loss, conv_base)
from .autoregressive import GatedBlock, GatedPixelCNN, MaskedConv2d, RowLSTMLayer, RowLSTMNet, check_kernel
from .mlp import (ACTIVATIONS, DECODERS, MLP, BernoulliDecoder, ConvBernoulliDecoder, ConvGaussianEncoder,
                  GaussianDecoder, GaussianEncoder, GaussianHead, check_hidden, check_positive_int, encoder_decoder)
from .recurrent import SentenceDecoder, SentenceEncoder

__all__ = ["MLP", "GaussianHead", "GaussianEncoder", "BernoulliDecoder", "GaussianDecoder", "ConvGaussianEncoder",
           "ConvBernoulliDecoder", "encoder_decoder", "ACTIVATIONS", "DECODERS", "check_positive_int", "check_hidden",
           "GatedBlock", "GatedPixelCNN", "MaskedConv2d", "RowLSTMLayer", "RowLSTMNet", "check_kernel",
           "MLPGenerator", "MLPDiscriminator", "ConvGenerator", "ConvDiscriminator", "OUTPUTS", "conv_base",
           "LOSSES", "check_loss",
           "SentenceEncoder", "SentenceDecoder"]
