"""Training-step speed of every method side by side, in one process, on the same model, batch and inputs.

    python -m adamix_jax.tools.benchmark --preset cpu --out runs/bench_cpu
    python -m adamix_jax.tools.benchmark --preset accelerator --out runs/bench_gpu [--dtype bfloat16]
    python -m adamix_jax.tools.benchmark --preset accelerator --model swin_t --methods deit,adautomix_n3 \
        --out runs/bench_swin
    python -m adamix_jax.tools.benchmark --preset cpu_full --model swin_t --methods erm,deit,adautomix_n3 \
        --out runs/swin_cpu

For each method (ERM, MixUp, MixUp+DM, CutMix, the DeiT recipe, AutoMix, AdAutoMix N=2 and N=3) it builds
the real jitted step of `adamix_jax.steps`, compiles it once (timed) and runs warm-up steps; then the
methods are timed in turn, a few steps each per round over several rounds (so a slow moment of the machine
hits all of them), each step to completion: median, spread (10th-90th percentile), images/s, and the ratio
to ERM's median and to the DeiT recipe's (the transformers' baseline). XLA's FLOP count of the compiled
step (per device) is given next to its time. Memory is XLA's estimate for the compiled step (arguments +
outputs - donated + temporaries) and, where the backend reports it, the device's peak (cumulative over the
process: the largest method dominates).
Then the input pipeline alone (images/s of the real input pipeline) and the fraction of the training
loop spent waiting for data: the loop of `train.py` (dispatch step t + 1 before reading step t's metrics)
over real batches from an epoch's start, timing the wait for each batch.

`--model` picks the backbone (MODELS): the CIFAR ResNet-18 (default), DeiT-S or Swin-T at 224x224, or
ConvNeXt-T with its 32x32 stem, with the generator settings of configs/cifar100_vit.py. The presets that
narrow the ResNet (cpu, tiny) use a narrow transformer too (`narrow_width`); `cpu_full` times the
full-width backbones on a CPU, a few steps at batch 8. `--batch_size N` (repeatable)
replaces the preset's batch sizes: at 224x224, AdAutoMix's step at batch 100 needs tens of GiB.

Output: OUT/benchmark.json and OUT/benchmark.md (the table), also printed. Inputs are the embedded
Fashion-MNIST subset through the real pipeline, RandomResizedCrop to the model's input size (32x32,
CIFAR's, or 224x224), so nothing is downloaded.
"""

import argparse
import dataclasses
import json
import os
import platform
import time

import jax
import numpy as np

from adamix_jax import config as config_lib
from adamix_jax import data, steps, validation
from adamix_jax.experiment import make_experiment
from adamix_jax.sharding import host_value, make_mesh, shard_batch


@dataclasses.dataclass(frozen=True)
class Preset:
  """What to measure: the backbone at `width`, each batch size, and how many steps to time."""

  width: int
  batch_sizes: tuple[int, ...]
  warmup_steps: int
  rounds: int  # Methods are timed in turn, `steps_per_round` steps each per round, so drift hits all alike.
  steps_per_round: int
  loop_steps: int  # Steps of the data-wait measurement.
  pipeline_batches: int


PRESETS = {
  "cpu": Preset(16, (100,), warmup_steps=2, rounds=6, steps_per_round=4, loop_steps=30, pipeline_batches=50),
  "accelerator": Preset(
    0, (100, 256), warmup_steps=5, rounds=10, steps_per_round=10, loop_steps=200, pipeline_batches=200
  ),
  # The full-width backbones on a CPU, where a 224x224 AdAutoMix step takes seconds: few steps, a small batch.
  "cpu_full": Preset(0, (8,), warmup_steps=1, rounds=3, steps_per_round=2, loop_steps=6, pipeline_batches=20),
  "tiny": Preset(4, (16,), warmup_steps=1, rounds=2, steps_per_round=1, loop_steps=3, pipeline_batches=3),
}


@dataclasses.dataclass(frozen=True)
class Model:
  """A benchmarked backbone: its input side, the width the narrow presets use, its config overrides."""

  image_size: int
  narrow_width: int
  overrides: dict


_TRANSFORMER = {"optimizer.name": "adamw", "generator.lam_concat": True, "generator.upsample_mode": "nearest"}
MODELS = {
  "cifar_resnet18": Model(32, 0, {}),
  "deit_s": Model(224, 48, {**_TRANSFORMER, "generator.feature_stage": 5, "model.drop_path": 0.1}),
  "swin_t": Model(224, 24, {**_TRANSFORMER, "model.drop_path": 0.2}),
  "convnext_t": Model(32, 24, {**_TRANSFORMER, "model.name": "convnext_t_cifar", "model.drop_path": 0.3}),
}

# name -> config overrides on top of the base.
METHODS = {
  "erm": {"method": "erm"},
  "mixup": {"method": "mixup"},
  "mixup+dm": {"method": "mixup", "loss.dm.eta": 0.1},
  "cutmix": {"method": "cutmix"},
  "deit": {"method": "deit", "mixup.alpha": 0.8},
  "puzzlemix": {"method": "puzzlemix", "puzzlemix.pixel_std": (0.353,)},  # (The embedded images are grey.)
  "comixup": {"method": "comixup", "mixup.alpha": 2.0},
  "alignmix": {"method": "alignmix", "mixup.alpha": 2.0},
  # AttentiveMix+ needs a network file (--config.attentivemix.pretrained): not in the default list.
  "automix": {"method": "automix"},
  "samix": {"method": "samix"},
  "adautomix_n2": {"method": "adautomix", "adautomix.num_mix": 2},
  "adautomix_n3": {"method": "adautomix", "adautomix.num_mix": 3},
}


def benchmark_config(
  preset: Preset, batch_size: int, dtype: str, data_dir: str, overrides: dict, model: str = "cifar_resnet18"
):
  """The benchmarked run: backbone `model` (MODELS) on the embedded dataset, one method's settings."""
  spec = MODELS[model]
  config = config_lib.base_config()
  config.data.name = "fashion_mnist_subset"
  config.data.data_dir = data_dir
  config_lib.random_resized_crop_recipe(config, image_size=spec.image_size)
  width = preset.width and (spec.narrow_width or preset.width)
  config.model.name, config.model.width, config.model.dtype = model, width, dtype
  config.batch_size = config.eval_batch_size = batch_size  # (The benchmark does not evaluate.)
  config.num_epochs = 10
  for key, value in {**spec.overrides, **overrides}.items():
    config_lib.set_path(config, key, value)
  return config


def _percentiles(times: list[float]) -> dict[str, float]:
  ms = 1000 * np.asarray(times)
  return {
    "median_ms": float(np.median(ms)),
    "p10_ms": float(np.percentile(ms, 10)),
    "p90_ms": float(np.percentile(ms, 90)),
  }


def _gflops(lowered) -> float | None:
  """XLA's FLOP count of the lowered step (one device's program, before compilation), in GFLOP; None where
  not reported.

  The count is taken before compilation on purpose: a GPU compilation replaces the convolutions by cuDNN
  calls that XLA's cost analysis does not count (an ERM ResNet-18 step read 1.5 GFLOP on an H200), while the
  lowered program is the same on every platform and counts them. On the CPU it equals the compiled count
  for dense convolutions; ConvNeXt's depthwise ones the CPU compiler rewrites into 2.2x the arithmetic.
  """
  analysis = lowered.cost_analysis()
  if isinstance(analysis, list):  # Older jax: one dict per program.
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return None if flops is None or flops < 0 else flops / 1e9


def _memory(compiled) -> dict[str, float | None]:
  result: dict[str, float | None] = {"xla_step_mib": None, "device_peak_mib": None}
  analysis = compiled.memory_analysis()
  if analysis is not None:
    total = (
      analysis.argument_size_in_bytes
      + analysis.output_size_in_bytes
      - analysis.alias_size_in_bytes
      + analysis.temp_size_in_bytes
    )
    result["xla_step_mib"] = total / 2**20
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    result["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return result


@dataclasses.dataclass
class Candidate:
  """One method's compiled step, its state and its pre-loaded batches, while the benchmark times it."""

  config: object
  compiled: object
  gflops: float | None
  state: object
  batches: list
  mesh: object
  pipeline: object
  compile_s: float
  memory: dict
  times: list = dataclasses.field(default_factory=list)
  loss: float = float("nan")

  def run(self, num_steps: int, timed: bool) -> None:
    for _ in range(num_steps):
      batch = self.batches[len(self.times) % len(self.batches)]
      start = time.perf_counter()
      self.state, metrics = self.compiled(self.state, batch)
      jax.block_until_ready((self.state, metrics))
      if timed:
        self.times.append(time.perf_counter() - start)
    self.loss = float(host_value(metrics["loss"]))


def compile_step(config, preset: Preset) -> Candidate:
  """Builds one method's real training step, compiles it (timed) and runs its warm-up steps."""
  mesh = make_mesh(config.num_devices)
  validation.validate(config, mesh.size)
  info = data.data_info(config)
  experiment = make_experiment(config, info, mesh)
  state = experiment.init()
  train_step = steps.make_train_step(
    experiment.method, experiment.nets, experiment.tx, experiment.parts.ema, info, mesh, total_steps=10_000
  )
  pipeline = data.InputPipeline(config, info)
  batches = [shard_batch(mesh, batch) for _, batch in zip(range(8), pipeline.train_batches(0), strict=False)]
  start = time.perf_counter()
  lowered = train_step.lower(state, batches[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  memory = _memory(compiled)
  candidate = Candidate(config, compiled, _gflops(lowered), state, batches, mesh, pipeline, compile_s, memory)
  candidate.run(preset.warmup_steps, timed=False)
  return candidate


def time_steps(configs: dict, preset: Preset) -> tuple[dict[str, dict], dict[str, Candidate]]:
  """Compiles every method's step, then times them in turn over `preset.rounds` rounds.

  Returns:
    (the table's row of each method, the compiled candidates for the loop measurement).
  """
  candidates = {}
  for name, config in configs.items():
    candidates[name] = compile_step(config, preset)
    print(f"compiled {name} (batch {config.batch_size}) in {candidates[name].compile_s:.1f} s", flush=True)
  for _ in range(preset.rounds):
    for candidate in candidates.values():
      candidate.run(preset.steps_per_round, timed=True)
  rows = {}
  for name, candidate in candidates.items():
    stats = _percentiles(candidate.times)
    rows[name] = {
      **stats,
      "images_per_s": candidate.config.batch_size / (stats["median_ms"] / 1000),
      "compile_s": candidate.compile_s,
      "gflops": candidate.gflops,
      **candidate.memory,
      "loss": candidate.loss,
    }
  return rows, candidates


def pipeline_throughput(config, preset: Preset) -> float:
  """Images/s of the real training input pipeline alone (decoded, augmented, batched on the host)."""
  pipeline = data.InputPipeline(config, data.data_info(config))
  for _ in zip(range(2), pipeline.train_batches(0), strict=False):  # Decode into memory, start the threads.
    pass
  batches, start = 0, time.perf_counter()
  epoch = 1
  while batches < preset.pipeline_batches:
    for _ in pipeline.train_batches(epoch):
      batches += 1
      if batches == preset.pipeline_batches:
        break
    epoch += 1
  return batches * config.batch_size / (time.perf_counter() - start)


def data_wait_fraction(candidate: Candidate, loop_steps: int) -> dict[str, float]:
  """The share of the training loop spent waiting for the next batch, in train.py's dispatch order."""
  state, compiled, mesh, pipeline = candidate.state, candidate.compiled, candidate.mesh, candidate.pipeline
  waited, dispatched, pending = 0.0, 0, None
  start = time.perf_counter()
  epoch = 1
  while dispatched < loop_steps:
    batches = pipeline.train_batches(epoch)
    while dispatched < loop_steps:
      wait_start = time.perf_counter()
      batch = next(batches, None)
      if batch is None:
        break
      sharded = shard_batch(mesh, batch)
      waited += time.perf_counter() - wait_start
      state, metrics = compiled(state, sharded)
      if pending is not None:
        float(pending["loss"])  # Read step t's metrics after step t + 1 is dispatched, as train.py does.
      pending, dispatched = metrics, dispatched + 1
    epoch += 1
  float(pending["loss"])
  candidate.state = state
  total = time.perf_counter() - start
  return {"data_wait_fraction": waited / total, "loop_images_per_s": dispatched * candidate.config.batch_size / total}


def run(
  preset_name: str,
  out: str,
  dtype: str = "float32",
  methods: tuple[str, ...] = tuple(METHODS),
  data_dir: str = "",
  model: str = "cifar_resnet18",
  batch_sizes: tuple[int, ...] = (),
) -> dict:
  """Runs the benchmark and writes OUT/benchmark.json and OUT/benchmark.md. Returns the results.

  `batch_sizes` replaces the preset's (e.g. a batch that fits a smaller device at 224x224)."""
  preset = PRESETS[preset_name]
  if batch_sizes:
    preset = dataclasses.replace(preset, batch_sizes=tuple(batch_sizes))
  device = jax.local_devices()[0]
  results = {
    "preset": preset_name,
    "model": model,
    "dtype": dtype,
    "device": f"{jax.device_count()} x {device.device_kind} ({device.platform})",
    "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    "jax": jax.__version__,
    "runs": [],
  }
  for batch_size in preset.batch_sizes:
    base = benchmark_config(preset, batch_size, dtype, data_dir, METHODS["erm"], model)
    configs = {name: benchmark_config(preset, batch_size, dtype, data_dir, METHODS[name], model) for name in methods}
    rows, candidates = time_steps(configs, preset)
    for baseline in ("erm", "deit"):
      if baseline in rows:
        for row in rows.values():
          row[f"ratio_to_{baseline}"] = row["median_ms"] / rows[baseline]["median_ms"]
    loop = {
      name: data_wait_fraction(candidates[name], preset.loop_steps)
      for name in ("erm", "adautomix_n3")
      if name in methods
    }
    results["runs"].append(
      {
        "batch_size": batch_size,
        "methods": rows,
        "pipeline_images_per_s": pipeline_throughput(base, preset),
        "loop": loop,
      }
    )
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "benchmark.json"), "w") as f:
    json.dump(results, f, indent=1)
  table = markdown(results)
  with open(os.path.join(out, "benchmark.md"), "w") as f:
    f.write(table)
  print(table, flush=True)
  return results


def _mib(value) -> str:
  return "–" if value is None else f"{value:,.0f}"


def _rate(images_per_s: float) -> str:
  return f"{images_per_s:,.0f}" if images_per_s >= 10 else f"{images_per_s:.2g}"  # 1.1, 0.56: slow steps.


def markdown(results: dict) -> str:
  """The results as markdown tables, one per batch size."""
  lines = [
    f"Preset `{results['preset']}`, model {results.get('model', 'cifar_resnet18')}, {results['dtype']} compute, on "
    f"{results['device']}; host {results['host']}; jax {results['jax']}.",
    "",
  ]
  for run_ in results["runs"]:
    lines += [
      f"Batch {run_['batch_size']}:",
      "",
      "| method | step ms (median) | p10–p90 ms | images/s | × ERM | × DeiT | GFLOP | compile s | XLA step MiB "
      "| device peak MiB |",
      "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in run_["methods"].items():
      ratios = [f"{row[key]:.2f}" if key in row else "–" for key in ("ratio_to_erm", "ratio_to_deit")]
      gflops = "–" if row.get("gflops") is None else f"{row['gflops']:,.1f}"
      lines.append(
        f"| {name} | {row['median_ms']:.1f} | {row['p10_ms']:.1f}–{row['p90_ms']:.1f} | {_rate(row['images_per_s'])} | "
        f"{' | '.join(ratios)} | {gflops} | {row['compile_s']:.1f} | {_mib(row['xla_step_mib'])} | "
        f"{_mib(row['device_peak_mib'])} |"
      )
    lines += ["", f"Input pipeline alone: {run_['pipeline_images_per_s']:,.0f} images/s."]
    for name, loop in run_["loop"].items():
      lines.append(
        f"Training loop ({name}): {_rate(loop['loop_images_per_s'])} images/s, "
        f"{100 * loop['data_wait_fraction']:.1f}% of the time waiting for data."
      )
    lines.append("")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
    prog="python -m adamix_jax.tools.benchmark",
    description=__doc__.split("\n\n")[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
  parser.add_argument("--out", default="runs/benchmark", help="directory for benchmark.json and benchmark.md")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="compute dtype")
  parser.add_argument("--model", choices=sorted(MODELS), default="cifar_resnet18", help="the backbone (MODELS)")
  parser.add_argument(
    "--batch_size", type=int, action="append", default=[], help="instead of the preset's (repeatable)"
  )
  parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
  parser.add_argument("--data_dir", default="", help="tfds data directory (the embedded dataset is prepared there)")
  args = parser.parse_args(argv)
  methods = tuple(filter(None, args.methods.split(",")))
  unknown = sorted(set(methods) - set(METHODS))
  if unknown:
    parser.error(f"unknown methods {', '.join(unknown)}. Valid choices: {', '.join(METHODS)}.")
  if any(size <= 0 for size in args.batch_size):
    parser.error(f"--batch_size must be positive, not {min(args.batch_size)}.")
  run(args.preset, args.out, args.dtype, methods, args.data_dir, args.model, tuple(args.batch_size))


if __name__ == "__main__":
  main()
