"""Weights & Biases logging: the settings (:class:`WandbSettings`, ``--wandb.*``), the
factory (:func:`make_wandb_logger`), and Lightning's ``WandbLogger`` made safe for unattended
runs (:class:`OfflineFallbackWandbLogger`):

* ``offline=True`` when no credentials are configured (:func:`make_wandb_logger` decides,
  see :func:`wandb_credentials_configured`); the ``wandb sync`` command to upload the
  run later is printed when the run ends.
* If the W&B server cannot be reached within ``init_timeout`` seconds, the run falls back
  to offline mode instead of failing the fit.
* The run is finished in :meth:`finalize`, so several fits in one process give several
  runs (unless ``keep_open`` is set, e.g. while a test follows the fit).
* The run's config is the one given at construction (cnnbench passes the whole nested
  CLI config): Lightning's flat copy of the model's hyperparameters (with private keys
  such as ``_instantiator``) is not logged a second time.

``wandb`` itself is imported only when a logger is built: ``import cnnbench.training`` never imports it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only


@dataclass
class WandbSettings:
    """Weights & Biases options.

    Args:
        project: W&B project.
        entity: Team or user (default: the account's).
        group: Run group (the bench runner uses the grid name).
        name: Run name.
        tags: Run tags.
        mode: ``auto`` (online with credentials, else offline), ``online`` or ``offline``.
        init_timeout: Seconds to wait for the W&B server before falling back to offline.

    Example:
        >>> WandbSettings(project="demo").mode
        'auto'
    """

    project: str = "cnnbench"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "auto"
    init_timeout: float = 30.0


def wandb_credentials_configured() -> bool:
    """An API key in the environment or in ``~/.netrc`` for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def make_wandb_logger(
    settings: WandbSettings, save_dir: str, config: dict[str, Any] | None = None, **kwargs: Any
) -> Logger:
    """A ``WandbLogger`` that runs offline when no credentials are configured (or the
    server cannot be reached), so training never waits on the network. ``kwargs`` go to
    Lightning's ``WandbLogger`` (``log_model``, ``prefix``, ...)."""
    mode = settings.mode
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_credentials_configured() else "offline")
    return OfflineFallbackWandbLogger(
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        name=settings.name,
        tags=list(settings.tags) or None,
        save_dir=os.path.abspath(save_dir),
        offline=mode in ("offline", "dryrun"),
        init_timeout=settings.init_timeout,
        config=config or {},
        **kwargs,
    )


class OfflineFallbackWandbLogger(WandbLogger):
    """``WandbLogger`` with offline fallback and one finished run per fit.

    Example (skipped in the doctests: it needs the optional ``wandb`` package):
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
