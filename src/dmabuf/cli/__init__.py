"""The ``dmabuf`` command line (click). Subcommands are registered from the modules of this package."""

from __future__ import annotations

import click

from .._core import core_build
from .check import check
from .explore_cmds import demo, explore_cmd, replay_cmd

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmabuf", message=f"%(prog)s %(version)s, explorer core: {core_build()}")
def main() -> None:
    """Model-check Linux dma-buf / dma-resv / dma-fence / ww_mutex code: run it on real threads or explore
    its interleavings, and get a minimal, replayable counterexample."""


main.add_command(demo)
main.add_command(explore_cmd)
main.add_command(replay_cmd)
main.add_command(check)
