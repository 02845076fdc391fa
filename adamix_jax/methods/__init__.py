"""Training methods, selectable by `config.method`: a name -> Method class registry.

method = METHODS[config.method].from_config(config, total_steps)   # its options read and checked
"""

from adamix_jax.methods.adautomix import AdAutoMix
from adamix_jax.methods.alignmix import AlignMix
from adamix_jax.methods.attentivemix import AttentiveMix
from adamix_jax.methods.automix import AutoMix
from adamix_jax.methods.base import Method, Networks
from adamix_jax.methods.comixup import CoMixup
from adamix_jax.methods.erm import ERM
from adamix_jax.methods.learned_mixup import LearnedMixPlan, LearnedMixup
from adamix_jax.methods.puzzlemix import PuzzleMix
from adamix_jax.methods.samix import SAMix
from adamix_jax.methods.semisup import DMixMatch, FixMatch
from adamix_jax.methods.smmix import SMMix
from adamix_jax.methods.static_mixup import (
  CutMix,
  DeiTMixup,
  FMix,
  GridMix,
  ManifoldMix,
  MixUp,
  ResizeMix,
  SaliencyMix,
  SmoothMix,
  StaticMixup,
  TransMix,
)

METHODS: dict[str, type[Method]] = {
  method.name: method
  for method in (
    ERM,
    MixUp,
    CutMix,
    FMix,
    ResizeMix,
    SaliencyMix,
    GridMix,
    SmoothMix,
    PuzzleMix,
    CoMixup,
    AttentiveMix,
    ManifoldMix,
    AlignMix,
    DeiTMixup,
    TransMix,
    SMMix,
    AutoMix,
    SAMix,
    AdAutoMix,
    FixMatch,
    DMixMatch,
  )  # fmt: skip
}


def reported_head(method: str, report: str = "auto") -> str:
  """The "<online|ema>/<head>" whose median top-1 is a run's reported number: `report` (config.eval.report),
  or for "auto" the method's own (`Method.reported`)."""
  return METHODS[method].reported if report == "auto" else report


__all__ = [
  "METHODS",
  "ERM",
  "DeiTMixup",
  "TransMix",
  "AdAutoMix",
  "AlignMix",
  "AttentiveMix",
  "AutoMix",
  "CoMixup",
  "SAMix",
  "DMixMatch",
  "FixMatch",
  "LearnedMixPlan",
  "LearnedMixup",
  "Method",
  "Networks",
  "PuzzleMix",
  "SMMix",
  "StaticMixup",
  "reported_head",
]
