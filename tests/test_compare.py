"""`python -m adamix_jax.compare`: runs grouped by config without the seed, mean ± std, curves."""

import json
import os

from adamix_jax import compare


def _run(method, seed, top1, finished=True, **keys):
  config = {"method": method, "seed": seed, "num_epochs": 2, "eval.report": "auto", "log.every_steps": seed, **keys}
  history = [{"epoch": e, "metrics": {"online/one/top1": top1 - 2 + e}} for e in (1, 2)]
  summary = {"reported_top1": top1, "reported_head": "online/one", "steps": 20} if finished else None
  return compare.Run(f"runs/{method}_{seed}", config, history, summary)


def test_runs_differing_in_seed_form_a_group_named_by_what_sets_it_apart(tmp_path):
  runs = [
    _run("mixup", 0, 80.0, **{"loss.dm.eta": 0.0}),
    _run("mixup", 1, 82.0, **{"loss.dm.eta": 0.0}),
    _run("mixup", 0, 83.0, **{"loss.dm.eta": 0.1}),
    _run("erm", 0, 75.0),
    _run("erm", 1, 0.0, finished=False),
  ]
  groups = compare.group_runs(runs)
  assert sorted(groups) == ["erm", "mixup (loss.dm.eta=0.0)", "mixup (loss.dm.eta=0.1)"]
  assert [r.config["seed"] for r in groups["mixup (loss.dm.eta=0.0)"]] == [0, 1]
  text = compare.table(groups)
  assert "| mixup (loss.dm.eta=0.0) | online/one | 81.00 ± 1.41 | 2 | 2 | 20 |" in text
  assert "| erm | online/one | 75.00 ± 0.00 | 1 (+1 unfinished) | 2 | 20 |" in text
  path = tmp_path / "curves.png"
  compare.plot(groups, str(path))
  assert path.stat().st_size > 10_000


def test_a_directory_without_a_run_is_skipped_with_a_reason(tmp_path, capsys):
  assert compare.main([str(tmp_path)]) == 1
  assert "holds no checkpoint" in capsys.readouterr().err


def _report(workdir, method, top1, corruption=None):
  report = {"workdir": workdir, "method": method, "head": "online/one", "step": 8, "examples": 10, "top1": top1}
  if corruption:
    report["corruption"] = {"set": "s", "top1": corruption, "mean_top1": 50.0, "mean_top1_by_severity": []}
  return report


def test_robustness_reports_side_by_side(tmp_path, capsys):
  reports = [
    _report(str(tmp_path / "a"), "erm", 90.0, {"fog": [10, 20, 30, 40, 50]}),
    _report(str(tmp_path / "b"), "mixup", 80.0),
  ]
  lines = compare.robustness_table(reports).splitlines()
  assert lines[0].startswith("| | erm, online/one, step 8 (") and "mixup, online/one" in lines[0]
  assert "| clean top-1 (%) | 90.00 | 80.00 |" in lines
  assert "| corruption fog top-1 (%, mean of severities 1-5) | 30.00 | – |" in lines  # b has no corruption suite.
  for report in reports:
    os.makedirs(os.path.join(report["workdir"], "robustness"))
    with open(os.path.join(report["workdir"], "robustness", "robustness.json"), "w") as f:
      json.dump(report, f)
  assert compare.main(["--robustness", reports[0]["workdir"], reports[1]["workdir"]]) == 0
  assert "| clean top-1 (%) | 90.00 | 80.00 |" in capsys.readouterr().out
  assert compare.main(["--robustness", str(tmp_path)]) == 1
  assert "run python -m adamix_jax.evaluate --workdir" in capsys.readouterr().err
