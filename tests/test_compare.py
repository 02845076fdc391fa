"""`python -m adamix_jax.compare`: runs grouped by config without the seed, mean ± std, curves."""

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
