"""The method reference the code cites is in the repository, and every citation points at a section of it."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD = os.path.join(ROOT, "docs", "method.md")
CITATION = re.compile(r"docs/method\.md#([A-Za-z0-9_-]+)")


def _anchor(heading: str) -> str:
  """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _sources():
  for folder in ("adamix_jax", "configs", "tests", "notebooks", "docs"):
    for directory, _, names in os.walk(os.path.join(ROOT, folder)):
      for name in names:
        if name.endswith((".py", ".md", ".ipynb")):
          yield os.path.join(directory, name)
  yield os.path.join(ROOT, "README.md")


def test_every_citation_of_the_method_reference_names_an_existing_section():
  with open(METHOD) as f:
    anchors = {_anchor(line.lstrip("#")) for line in f if line.startswith("#")}
  cited = {}
  for path in _sources():
    if os.path.samefile(path, __file__):
      continue
    with open(path) as f:
      text = f.read()
    assert "ADAUTOMIX.md" not in text and "shared/golden" not in text, f"{path} cites a file outside the repository"
    for anchor in CITATION.findall(text):
      cited.setdefault(anchor, os.path.relpath(path, ROOT))
  assert len(cited) >= 8  # The package, configs and README cite it.
  missing = {anchor: path for anchor, path in cited.items() if anchor not in anchors}
  assert not missing, f"citations of sections that docs/method.md does not have: {missing}"


def test_method_reference_math_is_delimited_for_github():
  """Inline math opens and closes within each paragraph; display math comes in $$ pairs."""
  with open(METHOD) as f:
    paragraphs = f.read().split("\n\n")
  for paragraph in paragraphs:
    display = paragraph.count("$$")
    assert display % 2 == 0, paragraph[:80]
    assert (paragraph.count("$") - 2 * display) % 2 == 0, paragraph[:80]


def test_every_link_of_the_readme_points_at_a_file_and_a_section_of_it():
  """The README is read on GitHub, outside the documentation build that checks the guides' links."""
  with open(os.path.join(ROOT, "README.md")) as f:
    links = re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", f.read())
  local = [(path, anchor) for path, anchor in links if "://" not in path]
  assert len(local) >= 10
  for path, anchor in local:
    target = os.path.join(ROOT, path)
    assert os.path.exists(target), f"the README links to {path}, which does not exist"
    if anchor:
      with open(target) as f:
        anchors = {_anchor(line.lstrip("#")) for line in f if line.startswith("#")}
      assert anchor in anchors, f"the README links to {path}#{anchor}: no such section"
