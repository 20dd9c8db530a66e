"""The object a notebook works through: validated params in, results/figures/env out.

A notebook's first cells are::

    profile = "auto"   # parameters cell (papermill replaces it)
    overrides = {}
    out_dir = None

    exp = rlhf_nb.start("00_quickstart", profile, overrides, out_dir)
    P = exp.params

and its last cell is ``exp.finish()``. In between, ``exp.log(...)``, ``exp.table(...)``,
``exp.figure(fn)`` and ``exp.claims(...)`` collect everything the report and ``rlhf-nb figures`` need.
Figures are drawn *from the recorded results only*, so they can be redrawn without any model.

Expensive steps run through ``exp.stage(name, fn, *args)``: a stage's output is kept in
``runs/<notebook>/<profile>.stages/`` under a key made of the code, the parameters it reads and the stages before
it, so a run stopped by Ctrl-C, a SIGTERM or a job's time limit, started again with the same code and parameters,
resumes after its last finished stage (see :meth:`Experiment.stage`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from rlhf_nb.core.io import atomic_write, atomic_write_bytes, to_jsonable
from rlhf_nb.core.layout import ENV, PARAMS, RESULTS, STAGES, source_hash
from rlhf_nb.core.paths import project_root
from rlhf_nb.notebook.config import load_params

_PACKAGES = ("rlhf-nb", "torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "papermill",
             "numpy", "pandas", "scipy", "seaborn", "matplotlib")


def table_records(rows: Any) -> list[dict[str, Any]]:
    """A table (list of dicts or a DataFrame) as the records ``results.json`` keeps (through pandas, so a report that
    recomputes a table from saved results writes what the notebook saved)."""
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return to_jsonable(df.to_dict(orient="records"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(root: Path, seed: int, profile: str) -> dict[str, Any]:
    """What a re-run needs to know: versions, commit, seed, device."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    from rlhf_nb.lm.device import describe

    cuda = torch.cuda.is_available()
    return {
        "profile": profile,
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no")),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "precision": describe(),
        "cpu_count": os.cpu_count(),
    }


def peak_memory() -> dict[str, float | None]:
    """Peak memory of this process so far, in MB: resident set (the kernel's own; sandboxed programs and other
    child processes are not counted) and, where CUDA was used, what torch allocated and reserved on the GPU."""
    import resource

    import torch

    status = Path("/proc/self/status")
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.M) if status.is_file() else None
    # VmHWM is this process's own peak; getrusage's also counts the parent's RSS at fork (a kernel papermill started)
    rss_mb = int(hwm.group(1)) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    used = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {"rss_mb": round(rss_mb, 1),
            "cuda_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if used else None,
            "cuda_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1) if used else None}


def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, default=str).encode()).digest()[:4], "little")


class Experiment:
    """Collects one notebook run's results and writes them (atomically) to ``out_dir``.

    ``final_dir`` (interactive runs): where ``finish()`` swaps the staged results in; batch runs leave the swap
    to the runner.
    """

    def __init__(self, notebook: str, profile: str, params: BaseModel, out_dir: Path, root: Path,
                 overrides: dict[str, Any], final_dir: Path | None = None):
        self.notebook, self.profile, self.params, self.out_dir, self.root = notebook, profile, params, out_dir, root
        self.final_dir = final_dir
        from rlhf_nb.lm.device import machine_probe

        self.probe = machine_probe()  # the machine's speed drifts: a timing is read against this and the end's
        self.started = time.time()
        self.results: dict[str, Any] = {
            "notebook": notebook, "profile": profile, "metrics": {}, "tables": {}, "data": {}, "figures": [],
            "findings": [], "claims": [],
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = {"notebook": notebook, "profile": profile, "overrides": overrides, "params": params.model_dump()}
        self.results["params"] = to_jsonable(resolved["params"])
        atomic_write(out_dir / PARAMS, yaml.safe_dump(to_jsonable(resolved), sort_keys=False))
        self.stage_dir = root / "runs" / notebook / f"{profile}.{STAGES}"
        self.stage_keys: dict[str, str] = {}  # this run's stages, in order, with their keys
        self.stage_log: dict[str, dict[str, Any]] = {}  # env.json: seconds per stage, and whether it was reused
        self.resume = True

    def __repr__(self) -> str:
        return f"Experiment({self.notebook!r}, profile={self.profile!r}, out_dir='{self.out_dir}')"

    def _repr_html_(self) -> str:
        from rlhf_nb.notebook.display import params_html

        return params_html(self.params, self.profile, self.notebook)

    @property
    def P(self) -> BaseModel:
        return self.params

    def stage(self, name: str, fn: Callable[..., Any], *args: Any, uses: Sequence[str] | None = None,
              after: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or its output from an earlier run with the same inputs.

        The stage's key is a hash of the package's source, the notebook, the profile, ``name``, the parameters it
        reads (``uses``: top-level names of ``exp.params``; by default all of them) and the keys of the stages it
        reads (``after``: their names; by default every stage before it in this run). So the same code and
        parameters reuse every finished stage, and a changed parameter invalidates the stages that read it and the
        stages after them, not the ones before. The random generators are seeded from the seed and ``name`` before
        the stage and again after it, so a reused stage leaves them where a computed one would: a resumed run gives
        the numbers of an uninterrupted one. Outputs are pickled (atomically) under ``runs/<nb>/<profile>.stages/``;
        ``rlhf-nb run --fresh`` ignores them. Arguments are not part of the key: everything a stage reads must come
        from the parameters or from earlier stages.
        """
        params = to_jsonable(self.params.model_dump())
        unknown = sorted(set(uses or ()) - set(params))
        if unknown:
            raise KeyError(f"stage {name!r} uses unknown parameters {unknown} (known: {', '.join(params)})")
        missing = sorted(set(after or ()) - set(self.stage_keys))
        if missing:
            raise KeyError(f"stage {name!r} comes after stages that have not run: {missing}")
        inputs = {
            "code": source_hash(), "notebook": self.notebook, "profile": self.profile, "stage": name,
            "params": {k: params[k] for k in (uses if uses is not None else params)},
            "after": {a: self.stage_keys[a] for a in (after if after is not None else self.stage_keys)},
        }
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        path = self.stage_dir / f"{slug}-{key}.pkl"
        seed = getattr(self.params, "seed", 0)
        seed_everything(_stable_seed(seed, name))
        if self.resume and path.is_file():
            with open(path, "rb") as f:
                value = pickle.load(f)
            print(f"stage {name!r}: reused from an earlier run ({path.relative_to(self.root).as_posix()})")
            self.stage_log[name] = {"reused": True, "key": key}
        else:
            started = time.time()
            value = fn(*args, **kwargs)
            atomic_write_bytes(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
            for old in self.stage_dir.glob(f"{slug}-{'?' * len(key)}.pkl"):  # one kept per stage: the latest inputs'
                if old != path:  # (exactly a key after the name: "seed 1" leaves "seed 10" alone)
                    old.unlink(missing_ok=True)
            self.stage_log[name] = {"reused": False, "key": key, "seconds": round(time.time() - started, 1)}
        self.stage_keys[name] = key
        seed_everything(_stable_seed(seed, name, "after"))
        return value

    def log(self, **metrics: Any) -> dict[str, Any]:
        """Record scalar metrics (shown in the report)."""
        self.results["metrics"].update(to_jsonable(metrics))
        return metrics

    def save(self, name: str, value: Any) -> Any:
        """Record raw data that figures and claims are computed from (returns ``value`` unchanged)."""
        self.results["data"][name] = to_jsonable(value)
        return value

    def table(self, name: str, rows: Any):
        """Record a table (list of dicts or a DataFrame) and return it as a DataFrame for display."""
        import pandas as pd

        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        self.results["tables"][name] = table_records(df)
        return df

    def finding(self, text: str):
        """Record a one-sentence finding (computed, with its n and interval) and show it as Markdown."""
        from rlhf_nb.notebook.display import finding

        self.results["findings"].append(text)
        return finding(text)

    def claims(self):
        """Compute the paper's claims from the results so far (its pure ``claims(results)``), record them as a
        cache (``rlhf-nb report`` recomputes them), and show them as a table with coloured verdicts."""
        from rlhf_nb.notebook.display import claims_table
        from rlhf_nb.notebook.registry import claims_function

        fn = claims_function(self.notebook)
        if fn is None:
            raise ValueError(f"{self.notebook} makes no claims")
        found = fn(json.loads(json.dumps(to_jsonable(self.results))))
        self.results["claims"] = [c.to_dict() for c in found]
        return claims_table(found)

    def figure(self, name: str):
        """Draw the paper's figure ``name`` from the results as they will be saved; write ``<name>.png``.

        A drawing function returns ``None`` when the run has nothing for it (a part not run in this profile): then
        nothing is written or recorded, and a line says so."""
        import matplotlib.pyplot as plt

        from rlhf_nb.notebook.registry import figures

        registry = figures(self.notebook)
        if name not in registry:
            raise KeyError(f"{self.notebook} has no figure {name!r} (known: {', '.join(registry)})")
        fig = registry[name](json.loads(json.dumps(to_jsonable(self.results))))
        if fig is None:
            print(f"figure {name!r}: nothing to draw in this run")
            return None
        if name not in self.results["figures"]:
            self.results["figures"].append(name)
        fig.savefig(self.out_dir / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return fig

    def finish(self) -> Path:
        """Write ``env.json`` and ``results.json``; return the results path."""
        wall_s = round(time.time() - self.started, 2)
        env = environment(self.root, getattr(self.params, "seed", 0), self.profile)
        from rlhf_nb.core.layout import fingerprint
        from rlhf_nb.lm.device import machine_probe

        env.update(started=datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
                   wall_s=wall_s, peak_memory=peak_memory(),
                   machine_probe={"start": self.probe, "end": machine_probe()}, stages=self.stage_log,
                   fingerprint=fingerprint(self.root, self.notebook, to_jsonable(self.params.model_dump())))
        self.results["wall_s"] = env["wall_s"]
        atomic_write(self.out_dir / ENV, json.dumps(env, indent=2))
        path = self.out_dir / RESULTS
        atomic_write(path, json.dumps(to_jsonable(self.results), indent=2))
        if self.final_dir is not None:  # interactive: swap the staged run into its scratch folder
            from rlhf_nb.core.layout import swap_in

            swap_in(self.out_dir, self.final_dir)
            self.out_dir, path = self.final_dir, self.final_dir / RESULTS
        print(f"results written to {path} ({env['wall_s']} s)")
        import gc

        gc.unfreeze()  # what start() froze is walked again: cyclic garbage among it can now be freed
        return path


def run_now(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """:meth:`Experiment.stage` without the cache: ``fn(*args, **kwargs)`` (what steps that take a ``stage`` use
    outside a notebook)."""
    return fn(*args, **kwargs)


#: environment variables a profile set at the last start(), with their values before (restored at the next start)
_profile_env: dict[str, str | None] = {}


def _apply_profile_env(profile: str) -> None:
    for key, before in _profile_env.items():
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
    _profile_env.clear()
    if profile != "gpu" and "HF_HUB_OFFLINE" not in os.environ:  # smoke and cpu never need the hub: fail fast
        _profile_env["HF_HUB_OFFLINE"] = None
        os.environ["HF_HUB_OFFLINE"] = "1"


def _freeze_startup_objects() -> None:
    """Take the objects that exist at a run's start, above all the imported libraries (~0.5M objects with torch,
    transformers, trl and datasets), out of the cycle collector's walks (``gc.freeze``) until the run's
    :meth:`Experiment.finish`; reference counting still frees them. A full collection then walks only what the run
    creates: the steps and accelerate call ``gc.collect()`` between trainings, and each call took 0.5 s on a 2-core
    AMD EPYC before (ten GRPO arms of 03's ``smoke`` spent 10.6 of 51 s collecting; 1.0 s after). ``finish()``
    unfreezes, so garbage in a cycle among them (a model loaded before ``start()`` and dropped during the run)
    is collected after the run and does not stay in a JupyterLab kernel for good."""
    import gc

    gc.collect()
    gc.freeze()


def start(notebook: str, profile: str | None = "auto", overrides: dict[str, Any] | None = None,
          out_dir: str | Path | None = None, resume: bool = True) -> Experiment:
    """Validate the notebook's params for ``profile``, seed everything, and open an :class:`Experiment`.

    ``out_dir`` is given by the runner (a staging folder it swaps into ``runs/<notebook>/<profile>/``). Without
    it (interactive use) results are staged beside ``runs/<notebook>/<profile>.scratch/`` and swapped in there
    by ``finish()``: exploring never touches the batch results that ``rlhf-nb list`` and the report read.
    """
    from rlhf_nb.core.quiet import quiet_third_party
    from rlhf_nb.lm.device import set_precision
    from rlhf_nb.notebook.display import smoke_banner

    overrides = dict(overrides or {})
    root = project_root()
    profile, params = load_params(notebook, profile, overrides, root)
    _apply_profile_env(profile)
    quiet_third_party()
    _freeze_startup_objects()
    seed_everything(getattr(params, "seed", 0))
    set_precision(getattr(params, "precision", "auto"))
    final = None
    if out_dir:
        out = Path(out_dir)
    else:
        final = root / "runs" / notebook / f"{profile}.scratch"
        out = final.with_name(f".{final.name}.staging-{os.getpid()}")
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    exp = Experiment(notebook, profile, params, out, root, overrides, final_dir=final)
    exp.resume = resume and os.environ.get("RLHF_NB_FRESH") != "1"
    print(f"{notebook} · profile {profile} · results -> {final or out}")
    if profile == "smoke":
        smoke_banner()
    return exp
