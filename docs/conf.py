"""Sphinx configuration: the guides (MyST Markdown) and the API reference (autodoc over the docstrings).

Build offline, warnings as errors (a broken cross-reference fails):
    pip install -e ".[docs]" && python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

project = "adamix_jax"
author = "adamix_jax authors"
copyright = "2026, adamix_jax authors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "adamix_jax"

# The guides are Markdown; headings get anchors so `page.md#section` links resolve (and are checked).
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# The docstrings are Google style and write code in single backticks, as Markdown does.
default_role = "literal"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"

# Every cross-reference must resolve (-n), except to the libraries we build on: no intersphinx, since the
# build runs offline.
nitpicky = True
nitpick_ignore_regex = [
  (r"py:.*", r"(jax|jaxlib|flax|optax|orbax|numpy|np|jnp|ml_collections|chex|etils|PIL|collections|typing)(\..*)?"),
  (r"py:.*", r"(Array|ArrayLike|ArrayTree|PRNGKey|ConfigDict|Callable|Iterator|Sequence|Mapping|Any)"),
]
# A Returns (or Yields) section is prose here, not "type: description": render it as written.
napoleon_custom_sections = [("Returns", "prose"), ("Yields", "prose")]
