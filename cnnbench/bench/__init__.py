"""The ablation runner: grids of model × pool × padding × precision × ... × seed, run, analysed, reported.

What lives where:

* Grids: ``axes`` (the axes, declared once as the fields of :class:`Cell`), ``gridparse`` (a grid
  file's checks), ``grid`` (:class:`GridSpec`, :func:`expand`, shards, shipped grids), ``resources``.
* Running: ``runner`` (:func:`run_grid`: skip finished cells, run the rest), ``launch`` (a cell's lock,
  process and final result), ``forkserver`` / ``forkclient`` (cells forked from one warm process),
  ``ray_launcher`` / ``ray_worker`` (``--launcher ray``), ``cell`` (one cell: fit, test, robustness),
  ``robustness`` (the shift/translation/border probes), ``datacache``, ``timing``, ``progress``,
  ``results`` (result files, atomic).
* Reporting: ``rows`` (results → rows), ``metrics`` (what each metric means), ``stats``, ``family``
  (exploratory comparisons), ``questions`` (the answers), ``analysis`` (the :class:`~cnnbench.bench.analysis.Analysis`
  everything is drawn from), then ``report`` (markdown and CSV files) and ``plots`` (figures), which both
  read an ``Analysis`` and never import each other's internals (``report`` calls ``plots``).

Example:
    >>> [c.run_id for c in expand(GridSpec.from_dict({"name": "g", "data": "mnist", "models": ["lenet5"],
    ...                                                "pool": ["max", "avg"], "padding": "valid"}))]
    ['lenet5-max-valid-zeros-32-true-d1-s0', 'lenet5-avg-valid-zeros-32-true-d1-s0']
"""

from cnnbench.bench.grid import Cell, GridError, GridSpec, expand, shard
from cnnbench.bench.runner import load_results, run_grid

__all__ = ["Cell", "GridError", "GridSpec", "expand", "load_results", "run_grid", "shard"]
