"""Image files and bytes to uint8 arrays, with PIL: what every dataset's pixels go through.

    image = decode(contents, channels=3)       # bytes (JPEG, PNG, ...) -> uint8 [H, W, 3]
    height, width, channels = header(path)     # reads the header only

Grey modes ("L", "1", "LA", "I", "I;16", "F") count as 1 channel and every other mode (RGB, palette,
CMYK, RGBA, YCbCr) as 3; `decode` converts to the channel count asked for, so one dataset's images all
come out alike.
"""

import io

import numpy as np
from PIL import Image

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def channels_of(mode: str) -> int:
  """1 for PIL's grey modes, 3 for every other mode."""
  return 1 if mode in _GREY_MODES else 3


def _as_array(image: Image.Image, channels: int) -> np.ndarray:
  mode = "L" if channels == 1 else "RGB"
  array = np.asarray(image if image.mode == mode else image.convert(mode))
  return array[..., None] if channels == 1 else array


def decode(contents: bytes, channels: int) -> np.ndarray:
  """Encoded image bytes -> uint8 [H, W, channels] (channels 1 or 3)."""
  with Image.open(io.BytesIO(contents)) as image:
    return _as_array(image, channels)


def header(path: str) -> tuple[int, int, int]:
  """(height, width, channels) of an image file, from its header (the pixels are not decoded).

  Raises:
    OSError (PIL.UnidentifiedImageError among them): the file is not an image PIL can read.
  """
  with Image.open(path) as image:
    return image.height, image.width, channels_of(image.mode)
