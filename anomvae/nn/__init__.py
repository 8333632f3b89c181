"""Network building blocks shared by every scorer."""

from .blocks import GaussianEncoder, build_body, build_decoder, build_encoder, default_architecture, mlp

__all__ = ["GaussianEncoder", "build_body", "build_decoder", "build_encoder", "default_architecture", "mlp"]
