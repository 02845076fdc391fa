"""The package's shape: config files are pure data, and no module of the package is part of an import cycle."""

import ast
import glob
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "adamix_jax")


def test_every_config_file_evaluates_without_jax_flax_or_tensorflow():
  script = """
import runpy, sys, time
start = time.perf_counter()
for path in sys.argv[1:]:
  module = runpy.run_path(path)
  module["get_config"]()
heavy = sorted(name for name in ("jax", "flax", "optax", "tensorflow", "tensorflow_datasets") if name in sys.modules)
print(heavy, time.perf_counter() - start)
"""
  configs = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
  assert len(configs) >= 8
  start = time.perf_counter()
  result = subprocess.run(
    [sys.executable, "-c", script, *configs], capture_output=True, text=True, cwd=REPO, check=True, timeout=60
  )
  heavy, seconds = result.stdout.rsplit(" ", 1)
  assert heavy == "[]", result.stdout
  assert float(seconds) < 1.0 and time.perf_counter() - start < 10  # Interpreter start-up included in the latter.


def _imports(path: str, module: str) -> set[str]:
  """The package modules `module` (at `path`) imports, anywhere in its body (functions included)."""
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      base = node.module
      if node.level:  # Relative: resolve against the package of `module`.
        base = ".".join(module.split(".")[: -node.level] + [node.module])
      found.add(base)
      found |= {f"{base}.{alias.name}" for alias in node.names}
  return {name for name in found if name.startswith("adamix_jax")}


def test_no_module_of_the_package_is_part_of_an_import_cycle():
  modules = {}
  for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
    name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")
    modules[name] = path

  def ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}

  graph = {}
  for name, path in modules.items():
    # Importing a.b.c runs a/__init__ and a/b/__init__ first, except those the importer is inside (already
    # being imported when it runs: a package's __init__ re-exporting its submodules is not a cycle).
    targets = {m for m in _imports(path, name) if m in modules}
    targets |= {parent for target in targets for parent in ancestors(target)}
    graph[name] = targets - ancestors(name) - {name}
  cycles = []
  state: dict[str, int] = {}  # 1: on the current path, 2: done.

  def visit(node, path):
    state[node] = 1
    for target in sorted(graph[node]):
      if state.get(target) == 1:
        cycles.append(path[path.index(target) :] + [target])
      elif target not in state:
        visit(target, path + [target])
    state[node] = 2

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
