"""`python -m adamix_jax.tools.compare`: runs grouped by config without the seed, mean ± std, curves."""

import json
import os

from adamix_jax.tools import compare


def _run(method, seed, top1, finished=True, **keys):
  config = {"method": method, "seed": seed, "num_epochs": 2, "eval.report": "auto", "log.every_steps": seed, **keys}
  history = [{"epoch": e, "metrics": {"online/one/top1": top1 - 2 + e}} for e in (1, 2)]
  last = {"epoch": 2, "step": 20, "metrics": {"online/one/top1": top1, "online/one/top5": 99.0}}
  summary = {"reported_top1": top1, "reported_head": "online/one", "steps": 20, "last_eval": last}
  summary = summary if finished else None
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
  assert sorted(groups) == ["erm", "mixup", "mixup+dm"]
  assert [r.config["seed"] for r in groups["mixup"]] == [0, 1]
  text = compare.table(groups)
  assert "| mixup | online/one | 81.00 ± 1.41 | 2 | 2 | 20 |" in text
  assert "| erm | online/one | 75.00 ± 0.00 | 1 (+1 unfinished) | 2 | 20 |" in text
  path = tmp_path / "curves.png"
  compare.plot(groups, str(path))
  assert path.stat().st_size > 10_000


def test_groups_sharing_a_label_are_told_apart_by_their_differing_keys():
  runs = [
    _run("cutmix", 0, 80.0, **{"loss.dm.eta": 0.1, "num_epochs": 2}),
    _run("cutmix", 0, 81.0, **{"loss.dm.eta": 0.1, "num_epochs": 4}),
    _run("cutmix", 0, 79.0, **{"loss.dm.eta": 0.0, "num_epochs": 4}),
  ]
  assert sorted(compare.group_runs(runs)) == ["cutmix", "cutmix+dm (num_epochs=2)", "cutmix+dm (num_epochs=4)"]


def test_heads_are_extra_columns_of_their_last_top1():
  teacher = _run("adautomix", 0, 90.0)
  teacher.summary["last_eval"]["metrics"]["ema/one/top1"] = 90.0
  teacher.summary["last_eval"]["metrics"]["online/one/top1"] = 88.0
  second = _run("adautomix", 1, 92.0)
  second.summary["last_eval"]["metrics"]["ema/one/top1"] = 92.0
  second.summary["last_eval"]["metrics"]["online/one/top1"] = 89.0
  text = compare.table(compare.group_runs([teacher, second, _run("erm", 0, 75.0)]), ("ema/one", "online/one"))
  header, _, *rows = text.splitlines()
  assert header.endswith("| ema/one | online/one |")
  assert rows[0].endswith("| 91.00 ± 1.41 | 88.50 ± 0.71 |")
  assert rows[1].endswith("| – | 75.00 ± 0.00 |")  # ERM has no teacher.


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
  assert "run python -m adamix_jax.tools.evaluate --workdir" in capsys.readouterr().err


def test_a_run_saved_before_a_config_key_existed_groups_with_its_defaults(tfds_dir, tmp_path):
  """A workdir's saved config lacking a key (an older version's run) reads as that key's default."""
  import shutil

  from helpers import tiny_config

  from adamix_jax import train

  new, old = str(tmp_path / "new"), str(tmp_path / "old")
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), new)
  shutil.copytree(new, old)
  meta_path = [p for p in (tmp_path / "old").rglob("*") if p.is_file() and b'"window"' in p.read_bytes()]
  assert meta_path
  for path in meta_path:  # Remove model.window from the saved config, as a run from before it would lack it.
    path.write_bytes(path.read_bytes().replace(b'"window": 0, ', b"").replace(b', "window": 0', b""))
    assert b'"window"' not in path.read_bytes()
  runs = [compare.read_run(new), compare.read_run(old)]
  assert runs[1].config["model.window"] == 0
  assert list(compare.group_runs(runs)) == ["erm"]
