"""The robustness report of `python -m adamix_jax.tools.evaluate`: its markdown table, and the files it writes
(robustness.json, robustness.md, the reliability, occlusion and corruption plots, TensorBoard scalars)."""

import json

import numpy as np
from etils import epath

from adamix_jax.reporting import TensorBoardWriter


def report_rows(report: dict, per_severity: bool = True) -> list[tuple[str, str]]:
  """The report's numbers as (name, formatted value) rows, in the order of the markdown table.

  Args:
    per_severity: each corruption's top-1 at severities 1-5; otherwise their mean.
  """
  rows = [("clean top-1 (%)", f"{report['top1']:.2f}")]
  if "calibration" in report:
    c = report["calibration"]
    rows += [("ECE (%, 15 bins)", f"{c['ece']:.2f}"), ("NLL", f"{c['nll']:.4f}"), ("Brier", f"{c['brier']:.4f}")]
  if "fgsm" in report:
    f = report["fgsm"]
    rows.append((f"FGSM top-1 (%, eps {f['eps']:.4f}, {f['space']})", f"{f['top1']:.2f}"))
  if "pgd" in report:
    g = report["pgd"]
    rows.append((f"PGD-{g['steps']} top-1 (%, eps {g['eps']:.4f}, pixel)", f"{g['top1']:.2f}"))
  if "occlusion" in report:
    o = report["occlusion"]
    rows += [(f"occlusion {s}x{s} top-1 (%)", f"{t:.2f}") for s, t in zip(o["sizes"], o["top1"], strict=True)]
  if "corruption" in report:
    c = report["corruption"]
    rows.append((f"corruption mean top-1 (%, {len(c['top1'])} x 5)", f"{c['mean_top1']:.2f}"))
    if "mce" in c:
      rows.append(("mCE (%, against the baseline run)", f"{c['mce']['mce']:.2f}"))
    for name, values in c["top1"].items():
      if per_severity:
        rows.append((f"corruption {name} top-1 (%, severities 1-5)", " / ".join(f"{t:.1f}" for t in values)))
      else:
        rows.append((f"corruption {name} top-1 (%, mean of severities 1-5)", f"{np.mean(values):.2f}"))
  return rows


def describe(report: dict) -> str:
  """'<method>, <head>, step N, n test images': what a report evaluated."""
  return f"{report['method']}, {report['head']}, step {report['step']}, {report['examples']} test images"


def markdown(report: dict) -> str:
  """The report as a markdown table."""
  rows = report_rows(report)
  return "\n".join([f"| {describe(report)} | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def write(report: dict, out: str) -> None:
  """Writes the report's files into `out` (created if needed)."""
  import matplotlib
  from matplotlib.figure import Figure  # Not pyplot: no backend is switched, a notebook's plots keep working.

  out = epath.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "robustness.json").write_text(json.dumps(report, indent=1))
  (out / "robustness.md").write_text(markdown(report) + "\n")

  def save(fig, name: str) -> None:
    with (out / name).open("wb") as f:
      fig.savefig(f, format="png", dpi=120)

  scalars = {"top1": report["top1"]}
  if "calibration" in report:
    bins = report["calibration"]["bins"]
    edges = np.linspace(0, 1, len(bins["count"]) + 1)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.bar(edges[:-1], bins["accuracy"], width=edges[1] - edges[0], align="edge", edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['method']} {report['head']}: ECE {report['calibration']['ece']:.2f}%")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save(fig, "reliability.png")
    scalars |= {f"calibration/{k}": report["calibration"][k] for k in ("ece", "nll", "brier")}
  if "fgsm" in report:
    scalars["fgsm/top1"] = report["fgsm"]["top1"]
  if "pgd" in report:
    scalars["pgd/top1"] = report["pgd"]["top1"]
  if "occlusion" in report:
    occlusion = report["occlusion"]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot(occlusion["sizes"], occlusion["top1"], "o-")
    ax.set_xlabel("occluded square side (pixels)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['method']} {report['head']}: occlusion")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, "occlusion.png")
    scalars |= {f"occlusion/{s}": t for s, t in zip(occlusion["sizes"], occlusion["top1"], strict=True)}
  if "corruption" in report:
    c = report["corruption"]
    names = list(c["top1"])
    values = np.array([c["top1"][name] for name in names])
    fig = Figure(figsize=(max(6, 0.55 * len(names)), 4))
    ax = fig.subplots()
    ax.bar(range(len(names)), values.mean(1), color="lightgray", edgecolor="k", label="mean over severities")
    for severity in range(values.shape[1]):
      ax.plot(
        range(len(names)),
        values[:, severity],
        ".",
        color=matplotlib.colormaps["viridis"](severity / 4),
        label=f"severity {severity + 1}",
      )
    ax.axhline(report["top1"], color="k", ls="--", lw=1, label="clean")
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['method']} {report['head']}: corruptions, mean {c['mean_top1']:.2f}%", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save(fig, "corruption.png")
    scalars["corruption/mean_top1"] = c["mean_top1"]
    scalars |= {f"corruption/{name}": float(np.mean(v)) for name, v in c["top1"].items()}
    if "mce" in c:
      scalars["corruption/mce"] = c["mce"]["mce"]
  writer = TensorBoardWriter(out / "tensorboard")
  for name, value in scalars.items():
    writer.scalar(report["step"], f"robustness/{name}", value)
  writer.close()
