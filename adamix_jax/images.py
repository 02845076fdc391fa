"""Pixels <-> model inputs: the per-channel normalisation the networks see and its inverse for pictures.

The input pipeline delivers uint8 pixels; the jitted steps normalise them on the device
(`normalize`), and pictures turn mixed model inputs back into pixels (`denormalize`).
"""

import jax
import jax.numpy as jnp
import numpy as np


def normalize(images, mean, std) -> jax.Array:
  """uint8 images [..., C] -> float32 (images / 255 - mean) / std, per channel."""
  images = jnp.asarray(images, jnp.float32) / 255.0
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def denormalize(images, mean, std) -> np.ndarray:
  """Normalised images [..., C] back to uint8 pixels on the host, clipped to [0, 255]."""
  pixels = (np.asarray(images, np.float32) * np.asarray(std) + np.asarray(mean)) * 255.0
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8)
