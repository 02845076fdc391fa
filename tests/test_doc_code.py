"""Every code block of the README and the guides runs, so a renamed function breaks CI and not a reader.

A page's Python blocks run in order in one fresh interpreter (one namespace, as a reader pastes them into one
session; no emulated devices: what a reader's CPU gives), from a scratch directory that sees the repository's
`configs/`. Its shell blocks run too, each in its own scratch directory, unless the block says it is long: its
first line is a `# long: ...` comment that says why (a training, an accelerator, a download). Every block names
its language: `python`, `bash`, or `text` for output and layouts. Pages and blocks that train (a short
run, under a minute or two) run with the tests marked slow.
"""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
  os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md")
)
LANGUAGES = ("python", "bash", "text")
LONG = re.compile(r"^# long: \S")
FENCE = re.compile(r"^(\s*)```(.*)$")
SHELL_TIMEOUT_S = 180  # The quick ones take under a minute alone; CI runs two tests at a time.
PAGE_TIMEOUT_S = 300  # All of a page's Python blocks together.
TRAINS = ("train_and_evaluate", "adamix_jax.main")

# Runs a page's Python blocks in order in one namespace; on a failure names the block's line and stops.
RUNNER = """
import json, sys, traceback
page, blocks = sys.argv[1], json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for line, code in blocks:
  try:
    exec(compile(code, f"{page}:{line}", "exec"), namespace)
  except BaseException:
    traceback.print_exc()
    print(f"the Python block of {page} at line {line} failed", file=sys.stderr)
    sys.exit(1)
"""


def code_blocks(page: str) -> list[tuple[int, str, str]]:
  """(line of the opening fence, language, code) of every fenced block of a Markdown page."""
  with open(os.path.join(ROOT, page)) as f:
    lines = f.read().split("\n")
  blocks, opened = [], None
  for number, line in enumerate(lines, start=1):
    match = FENCE.match(line)
    if not match:
      continue
    if opened is None:
      opened = (number, match.group(1), match.group(2).strip())
    elif not match.group(2).strip():
      start, indent, language = opened
      code = "\n".join(text[len(indent) :] for text in lines[start : number - 1])
      blocks.append((start, language, code))
      opened = None
  assert opened is None, f"{page}:{opened[0]}: a code block is never closed"
  return blocks


def _scratch(tmp_path):
  """A directory like a reader's clone: `configs/` is there, the rest is theirs to write."""
  os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
  return tmp_path


def _environment():
  environment = dict(os.environ)
  for key in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES"):
    environment.pop(key, None)
  environment["JAX_PLATFORMS"] = "cpu"
  # `python` and `pip` are this test's interpreter's, as in the reader's activated virtual environment.
  environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environment.get("PATH", "")
  return environment


@pytest.mark.parametrize("page", PAGES)
def test_every_block_names_its_language(page):
  for line, language, code in code_blocks(page):
    assert language in LANGUAGES or language.startswith("{"), f"{page}:{line}: a block of {language!r}"
    if language == "bash" and code.lstrip().startswith("# long"):
      assert LONG.match(code), f"{page}:{line}: write the first line as '# long: why'"


def _marks(code: str):
  return [pytest.mark.slow] if any(word in code for word in TRAINS) else []


PYTHON_PAGES = [
  pytest.param(page, marks=_marks("\n".join(code for _, language, code in code_blocks(page) if language == "python")))
  for page in PAGES
  if any(language == "python" for _, language, _ in code_blocks(page))
]


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page, tmp_path):
  blocks = [(line, code) for line, language, code in code_blocks(page) if language == "python"]
  result = subprocess.run(
    [sys.executable, "-c", RUNNER, page],
    input=json.dumps(blocks),
    cwd=_scratch(tmp_path),
    env=_environment(),
    capture_output=True,
    text=True,
    timeout=PAGE_TIMEOUT_S,
  )
  assert result.returncode == 0, result.stderr[-4000:]


SHELL_BLOCKS = [
  pytest.param(page, line, code, id=f"{page}:{line}", marks=_marks(code))
  for page in PAGES
  for line, language, code in code_blocks(page)
  if language == "bash" and not LONG.match(code)
]


@pytest.mark.parametrize(("page", "line", "code"), SHELL_BLOCKS)
def test_quick_shell_blocks_run(page, line, code, tmp_path):
  result = subprocess.run(
    ["bash", "-euo", "pipefail", "-c", code],
    cwd=_scratch(tmp_path),
    env=_environment(),
    capture_output=True,
    text=True,
    timeout=SHELL_TIMEOUT_S,
  )
  assert result.returncode == 0, f"{page}:{line}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def test_the_pages_have_blocks_of_each_kind():
  """The parser finds what the pages hold (a test that found no block would pass on anything)."""
  languages = [language for page in PAGES for _, language, _ in code_blocks(page)]
  assert languages.count("python") >= 5 and languages.count("bash") >= 20 and len(SHELL_BLOCKS) >= 3
