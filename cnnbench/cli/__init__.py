"""The ``cnnbench`` command line (the console script ``cnnbench.cli:main``).

What lives where:

* :mod:`~cnnbench.cli.main`: dispatch to the subcommands, exit codes, the line after a stop.
* :mod:`~cnnbench.cli.invocation`: :class:`Invocation`, the prepared ``fit|validate|test``
  command line (frozen), and :class:`RunState`, what the run learns while it runs.
* :mod:`~cnnbench.cli.argv`: registry names to class paths, per-model defaults and
  ``--ckpt_path`` settings as ``--config`` dicts in one place.
* :mod:`~cnnbench.cli.lightning` (with :mod:`~cnnbench.cli.callbacks`): ``fit``, ``validate``,
  ``test`` through Lightning's ``LightningCLI``.
* One module per cnnbench subcommand: :mod:`~cnnbench.cli.models`, :mod:`~cnnbench.cli.summary`,
  :mod:`~cnnbench.cli.predict`, :mod:`~cnnbench.cli.bench`, :mod:`~cnnbench.cli.report`.
* :mod:`~cnnbench.cli.help` (the model's options atop ``fit --help``) and
  :mod:`~cnnbench.cli.errors` (one-line errors).

Importing this package imports neither torch nor Lightning.

Example:
    >>> from cnnbench.cli import main
    >>> main(["models", "--help"])
    usage: cnnbench models [PATTERN]   (fnmatch pattern, e.g. 'alexnet*')
    0
"""

from cnnbench.cli.main import main

__all__ = ["main"]
