"""Tokenizers: turn an input of some modality into tokens (b, n, dim) for the BiXT encoder."""

from bixt.tokenizers.image import IMAGE_TOKENIZERS, ConvStem, ImageTokenizer, PatchEmbed

__all__ = ["IMAGE_TOKENIZERS", "ConvStem", "ImageTokenizer", "PatchEmbed"]
