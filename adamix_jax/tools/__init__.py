"""The command-line tools that read runs (the training command is `python -m adamix_jax.main`):

    python -m adamix_jax.tools.evaluate --workdir WORKDIR       # robustness and calibration
    python -m adamix_jax.tools.visualize --workdir WORKDIR      # pictures of the mixing
    python -m adamix_jax.tools.compare WORKDIR...               # runs side by side
    python -m adamix_jax.tools.benchmark --preset cpu           # the training step's speed

Each is `main(argv) -> exit status` over argparse: `--help` exits 0, a mistake is one line on stderr.
"""
