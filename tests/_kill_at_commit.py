"""Kill a CLI run at a store's commit point, deterministically (for the kill-and-resume tests).

Polling the store from the test and sending SIGKILL "soon after the second study" races the run:
on a loaded machine the run can finish before the kill, or be killed before anything was
committed. Instead :func:`killing_env` returns an environment whose Python processes (the CLI
and every dask worker it spawns, which inherit the environment) load a ``sitecustomize`` that
wraps :meth:`sinotriage.io.store.Store._commit`: the first commit attempted once ``after``
studies are committed kills the whole process group with SIGKILL, before its rename. That is the
worst moment for a kill: the study is written in full under ``.partial/`` and not yet visible.
Start the process with ``start_new_session=True`` so the kill does not reach pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

#: environment variable holding the number of committed studies after which the run is killed
ENV = "SINOTRIAGE_TEST_KILL_AFTER_COMMITS"

_SITECUSTOMIZE = f'''
import os

if os.environ.get("{ENV}"):
    import signal

    from sinotriage.io import store as _store

    _after = int(os.environ["{ENV}"])
    _commit = _store.Store._commit

    def _killing_commit(self, tmp, final, overwrite):
        done = sum((d / "zarr.json").is_file() for d in final.parent.iterdir())
        if done >= _after:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return _commit(self, tmp, final, overwrite)

    _store.Store._commit = _killing_commit
'''


def killing_env(tmp_path: Path, after: int) -> dict[str, str]:
    """Environment for ``subprocess.Popen`` that kills the run at the commit after ``after``
    committed studies (see the module docstring)."""
    site = tmp_path / "kill_at_commit"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, ENV: str(int(after))}
