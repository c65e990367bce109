"""The ``mdf`` command line: one click group, one sub-group per package.

Sub-commands are imported only when they are invoked, so ``mdf scale`` never imports torch and
``mdf --help`` stays fast. Each package owns its commands and exposes one click command or group
(``scaling/cli.py``, ``metrics/cli.py``, ``restore/cli.py``, ``study/cli.py``; the analyses and
the demo in ``experiments/commands.py``); this module only registers them.
"""

from __future__ import annotations

import importlib

import click

#: name -> (import path "module:attribute", one-line help shown by ``mdf --help``)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scale": ("scaling.cli:scale", "Scale pairwise comparisons into JND units (pwcmp-compatible)."),
    "metrics": ("metrics.cli:cli", "Losses and quality metrics: evaluate, convert and train MDF."),
    "restore": ("restore.cli:cli", "Train and run restoration networks; export study triplets."),
    "study": ("study.cli:cli", "Run the pairwise-comparison crowd study (Flask app)."),
    "experiments": ("experiments.commands:cli", "The paper's analyses and figures on real data."),
    "demo": ("experiments.commands:demo",
             "Run the whole pipeline on bundled images (CPU, offline)."),
}


def _available(import_path: str) -> bool:
    """Whether the module of ``import_path`` exists, without importing its package (and torch)."""
    import importlib.util
    from pathlib import Path

    package, _, sub = import_path.split(":")[0].partition(".")
    spec = importlib.util.find_spec(package)
    if spec is None or not sub:
        return spec is not None
    return any((Path(p) / f"{sub}.py").is_file() for p in spec.submodule_search_locations or [])


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (path, _) in SUBCOMMANDS.items() if _available(path))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        path, _ = SUBCOMMANDS[cmd_name]
        if not _available(path):
            return None
        module_name, attr = path.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="mdf-toolkit")
def main() -> None:
    """Image-restoration losses, crowd pairwise-comparison studies and JND scaling.

    Implements "Training a Task-Specific Image Reconstruction Loss" (Mustafa et al., WACV 2022)
    and the experiments around it. Every sub-command has its own --help.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
