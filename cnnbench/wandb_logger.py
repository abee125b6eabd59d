"""Lightning's ``WandbLogger``, made safe for unattended runs.

* ``offline=True`` when no credentials are configured (the caller decides, see
  :func:`cnnbench.training.make_wandb_logger`); the ``wandb sync`` command to upload the
  run later is printed when the run ends.
* If the W&B server cannot be reached within ``init_timeout`` seconds, the run falls back
  to offline mode instead of failing the fit.
* The run is finished in :meth:`finalize`, so several fits in one process give several
  runs (unless ``keep_open`` is set, e.g. while a test follows the fit).
* The run's config is the one given at construction (cnnbench passes the whole nested
  CLI config): Lightning's flat copy of the model's hyperparameters (with private keys
  such as ``_instantiator``) is not logged a second time.

Imported only when W&B logging is asked for: ``import cnnbench`` never imports wandb.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only


class OfflineFallbackWandbLogger(WandbLogger):
    """``WandbLogger`` with offline fallback and one finished run per fit.

    Example:
        >>> logger = OfflineFallbackWandbLogger(project="demo", offline=True)  # doctest: +SKIP
    """

    def __init__(self, *args: Any, init_timeout: float = 30.0, **kwargs: Any) -> None:
        import wandb

        kwargs.setdefault("settings", wandb.Settings(init_timeout=init_timeout, silent=True))
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            # Lightning always passes the key; W&B warns that the setting is deprecated
            self._wandb_init.pop("anonymous", None)
        self.keep_open = False
        self.fell_back_offline = False
        self._has_config = bool(self._wandb_init.get("config"))

    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        """Log hyperparameters unless the full config was given at construction."""
        if self._has_config:
            return
        if isinstance(params, Mapping):
            params = {k: v for k, v in params.items() if not str(k).startswith("_")}
        super().log_hyperparams(params)

    @property  # type: ignore[override]
    def experiment(self) -> Any:
        if self._experiment is None and self._save_dir:
            # W&B looks for a git repository in the run's folder and warns if it is missing
            os.makedirs(self._save_dir, exist_ok=True)
        try:
            return super().experiment
        except Exception as err:  # server unreachable, timeout, auth failure
            if self._offline:
                raise
            print(f"W&B unreachable ({type(err).__name__}: {err}); logging offline instead.", file=sys.stderr)
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1)
            self._offline, self.fell_back_offline = True, True
            self._wandb_init["mode"] = "offline"
            self._experiment = None
            return super().experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if not self.keep_open:
            self.finish(status)

    @rank_zero_only
    def finish(self, status: str = "success") -> None:
        """Finish the W&B run (idempotent) and say how to upload it if it is offline."""
        run = self._experiment
        if run is None:
            return
        run_dir = getattr(run, "dir", None)
        run.finish(exit_code=0 if status == "success" else 1)
        self._experiment = None
        import wandb

        # reset W&B's process-wide settings so the next run reads its mode and server afresh
        wandb.teardown()
        if self._offline and run_dir:
            folder = os.path.abspath(run_dir.rsplit("/files", 1)[0])  # copy-pasteable from any directory
            print(f"W&B run saved offline; upload it with: wandb sync {folder}", file=sys.stderr)
