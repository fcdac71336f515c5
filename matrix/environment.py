"""``environment.json``: what a sweep ran on, so that any trial can be reproduced from its record.

Written once per run by the controller (the serial run, or the xdist/Ray controller), atomically,
into the sweep folder.  Cheap by design: nothing here imports torch or any other heavy library.
Versions come from the installed distributions' metadata (:mod:`importlib.metadata`), torch's CUDA
version from the text of its ``version.py``, GPUs and the driver from ``nvidia-smi`` (or
``/proc/driver/nvidia``), and the code under test from ``git`` in the rootdir's repository.  A
piece that cannot be read says why (``{"error": ...}``) instead of failing the sweep.

When the code under test has uncommitted changes, ``git diff HEAD`` is saved beside it as
``environment.diff``.  A resumed sweep keeps the earlier run's file as ``environment.1.json``
(``.2``, ...): ``environment.json`` always describes the latest run in the folder.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_sweep.matrix import storage
from pytest_sweep.matrix.files import ENVIRONMENT_DIFF, ENVIRONMENT_JSON

SCHEMA_VERSION = 1
#: Environment variables that change what trains or where (never the whole environment: no secrets).
ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "RAY_ADDRESS",
)
#: Seconds any one external command (git, nvidia-smi) may take.
COMMAND_TIMEOUT = 10.0
#: Range files larger than this are recorded by hash only.
SOURCE_TEXT_LIMIT = 256 * 1024
UNTRACKED_LIMIT = 200


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")  # git status takes no lock on the index
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, errors="replace"
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{exc.cmd[0]} did not answer in {COMMAND_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}"


# -- the code under test ---------------------------------------------------------------------------


def git_state(root: Path, exclude: Iterable[Path] = (), diff_to: Path | None = None) -> dict[str, Any]:
    """The git state of the repository holding ``root``: commit, branch, whether it is dirty.

    :param exclude: folders left out of the dirty check (the sweep output: results are not code).
    :param diff_to: where to save ``git diff HEAD`` when tracked files changed.
    """
    if shutil.which("git") is None:
        return {"repository": None, "error": "git is not installed"}
    try:
        top = _run(["git", "rev-parse", "--show-toplevel"], cwd=root)
        if top.returncode != 0:
            return {"repository": None, "error": f"{root} is not in a git repository"}
        repo = Path(top.stdout.strip())
        head = _run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=repo)
        commit = head.stdout.strip() if head.returncode == 0 else None
        branch = _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=repo).stdout.strip() or None
        spec = ["--", "."]
        for folder in exclude:
            try:
                rel = Path(os.path.relpath(folder.resolve(), repo.resolve()))
            except ValueError:  # another drive
                continue
            if not str(rel).startswith(".."):
                spec.append(f":(exclude){rel.as_posix()}")
        status = _run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=normal", *spec], cwd=repo)
        if status.returncode != 0:
            return {"repository": str(repo), "commit": commit, "error": status.stderr.strip()[:300]}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"repository": None, "error": _why(exc)}
    entries = [e for e in status.stdout.split("\0") if e]
    untracked = [e[3:] for e in entries if e.startswith("??")]
    changed = [e[3:] for e in entries if not e.startswith("??") and len(e) > 3]
    state: dict[str, Any] = {
        "repository": str(repo),
        "commit": commit,
        "branch": branch if branch != "HEAD" else None,
        "dirty": bool(changed or untracked),
        "changed": changed[:UNTRACKED_LIMIT],
        "untracked": untracked[:UNTRACKED_LIMIT],
        "diff": None,
    }
    if commit is None:
        state["error"] = "no commit yet"
    if changed and diff_to is not None:
        try:
            diff = _run(["git", "diff", "HEAD" if commit else "--cached", "--binary", "--no-color", *spec], cwd=repo)
            if diff.returncode == 0 and diff.stdout:
                storage.write_text_atomic(storage.sweep_path(diff_to.parent, diff_to.name), diff.stdout)
                state["diff"] = diff_to.name
        except (OSError, subprocess.SubprocessError) as exc:
            state["diff_error"] = _why(exc)
    return state


# -- libraries, CUDA and GPUs (no torch import) ----------------------------------------------------


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata must not stop a sweep
        return None


def packages() -> dict[str, str]:
    """Every installed distribution the interpreter sees: ``name -> version``, sorted by name.

    Read from the ``NAME-VERSION.dist-info`` folder names on ``sys.path`` (a listing, not a
    metadata parse per package: 0.4 s for 150 packages here); the first one found wins, as for
    imports.  Other layouts (``.egg-info``) fall back to :mod:`importlib.metadata`.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist, _, version = name.removesuffix(".dist-info").rpartition("-")
                if dist:
                    found.setdefault(dist.replace("_", "-").lower(), version)
            elif name.endswith(".egg-info"):
                dist = name.removesuffix(".egg-info").split("-")[0].replace("_", "-").lower()
                egg_version = dist_version(dist)
                if egg_version is not None:
                    found.setdefault(dist, egg_version)
    return dict(sorted(found.items()))


def torch_build(version_file: Path | None = None) -> dict[str, Any] | None:
    """The torch version and the CUDA (or ROCm) it was built for, read from ``torch/version.py``'s text.

    ``importlib.util.find_spec("torch")`` locates the package without importing it.
    """
    version = dist_version("torch")
    if version_file is None:
        try:
            spec = importlib.util.find_spec("torch")
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None if version is None else {"version": version}
        version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    out: dict[str, Any] = {"version": version, "cuda": None, "hip": None, "git_version": None}
    try:
        tree = ast.parse(version_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError) as exc:
        out["error"] = f"cannot read {version_file.name}: {type(exc).__name__}"
        return out
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("__version__", "cuda", "hip", "git_version"):
                try:
                    literal = ast.literal_eval(value) if value is not None else None
                except ValueError:
                    continue
                out["version" if target.id == "__version__" else target.id] = literal
    return out


def cudnn_version(installed: dict[str, str]) -> str | None:
    """The cuDNN version from its pip wheel (``nvidia-cudnn-cu12``, ``-cu13``...), if one is installed."""
    for name, version in installed.items():
        if name.startswith("nvidia-cudnn"):
            return version
    return None


def gpus() -> dict[str, Any]:
    """The GPUs and driver this machine has (``nvidia-smi``, else ``/proc/driver/nvidia``)."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            done = _run([smi, "--query-gpu=index,name,driver_version,memory.total,uuid", "--format=csv,noheader"])
        except (OSError, subprocess.SubprocessError) as exc:
            return {"gpus": [], "driver": None, "error": _why(exc)}
        if done.returncode == 0:
            rows = [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if line.strip()]
            listed = [dict(zip(("index", "name", "driver", "memory", "uuid"), row, strict=False)) for row in rows]
            return {"gpus": listed, "driver": listed[0].get("driver") if listed else None, "source": "nvidia-smi"}
        return {"gpus": [], "driver": None, "error": f"nvidia-smi: {(done.stderr or done.stdout).strip()[:200]}"}
    proc = Path("/proc/driver/nvidia")
    if not proc.is_dir():
        return {"gpus": [], "driver": None}
    driver = None
    try:
        first = (proc / "version").read_text(encoding="utf-8").splitlines()[0]
        words = first.split()
        driver = next((w for w in words if w[:1].isdigit() and "." in w), None)
    except (OSError, IndexError):
        pass
    found: list[dict[str, str | None]] = []
    for info in sorted((proc / "gpus").glob("*/information")):
        try:
            fields = dict(line.split(":", 1) for line in info.read_text(encoding="utf-8").splitlines() if ":" in line)
        except OSError:
            continue
        found.append({"name": fields.get("Model", "").strip(), "bus": info.parent.name, "driver": driver})
    return {"gpus": found, "driver": driver, "source": "/proc/driver/nvidia"}


def host() -> dict[str, Any]:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu or platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }


# -- what was asked ----------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def describe_source(path: Path, kind: str, display: str) -> dict[str, Any]:
    """A range file (its text and hash) or a generated config folder (each file's hash)."""
    out: dict[str, Any] = {"path": str(path), "given": display or str(path), "kind": kind}
    if kind == "range":
        out["sha256"] = file_digest(path)
        try:
            if path.stat().st_size <= SOURCE_TEXT_LIMIT:
                out["text"] = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    else:
        try:
            out["files"] = {p.name: file_digest(p) for p in sorted(path.glob("config_*")) if p.is_file()}
        except OSError:
            out["files"] = {}
    return out


def gather(
    *,
    rootdir: Path,
    sweep_dir: Path,
    invocation_dir: Path,
    args: list[str],
    options: dict[str, Any],
    resolved: dict[str, Any],
    sources: list[dict[str, Any]],
    exclude: Iterable[Path] = (),
) -> dict[str, Any]:
    """The whole environment document (see the module docstring)."""
    import pytest_sweep

    started = time.perf_counter()
    torch = torch_build()
    gpu = gpus()
    installed = packages()
    env = {
        "schema_version": SCHEMA_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sweep_dir": str(sweep_dir),
        "command": {
            "argv": list(sys.argv),
            "args": list(args),
            "invocation_dir": str(invocation_dir),
            "rootdir": str(rootdir),
            "python": sys.executable,
        },
        "options": _json_safe(options),
        "resolved": _json_safe(resolved),
        "sources": sources,
        "code": git_state(rootdir, exclude, sweep_dir / ENVIRONMENT_DIFF),
        "pytest_sweep": {"version": dist_version("pytest-sweep") or pytest_sweep.__version__},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "pytest": dist_version("pytest"),
        "torch": torch,
        "torchvision": dist_version("torchvision"),
        "cuda": {
            "runtime": (torch or {}).get("cuda"),
            "cudnn": cudnn_version(installed),
            "driver": gpu.get("driver"),
        },
        "gpus": gpu.get("gpus", []),
        "host": host(),
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
        "packages": installed,
    }
    if gpu.get("error"):
        env["gpus_error"] = gpu["error"]
    env["seconds"] = round(time.perf_counter() - started, 3)
    return env


def write(sweep_dir: Path, env: dict[str, Any]) -> Path:
    """Write ``environment.json``; an earlier run's (``--sweep-resume``) is kept as ``environment.N.json``."""
    target = storage.sweep_path(sweep_dir, ENVIRONMENT_JSON)
    if target.exists():
        n = 1
        while (sweep_dir / f"environment.{n}.json").exists():
            n += 1
        os.replace(target, sweep_dir / f"environment.{n}.json")
    return storage.write_json_atomic(target, env)


def load(sweep_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(environment, None)``, or ``(None, why)`` for a folder without a readable one."""
    try:
        path = storage.sweep_path(sweep_dir, ENVIRONMENT_JSON)
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no {ENVIRONMENT_JSON} (a sweep from before pytest-sweep recorded its environment)"
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply to parse
        return None, f"{ENVIRONMENT_JSON} is not readable ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"{ENVIRONMENT_JSON} is not readable (not a JSON object)"
    return data, None


# -- reading it -------------------------------------------------------------------------------------


def _get(env: dict[str, Any], *path: str) -> Any:
    node: Any = env
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def key_facts(env: dict[str, Any]) -> dict[str, str | None]:
    """What a result depends on beyond its config: torch, CUDA, cuDNN, the driver and the GPUs."""
    names = sorted({str(g.get("name")) for g in env.get("gpus") or [] if isinstance(g, dict) and g.get("name")})
    return {
        "torch": _str(_get(env, "torch", "version")),
        "CUDA": _str(_get(env, "cuda", "runtime")),
        "cuDNN": _str(_get(env, "cuda", "cudnn")),
        "driver": _str(_get(env, "cuda", "driver")),
        "GPUs": ", ".join(names) if names else None,
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``torch 2.14.1 -> 2.15.0``... for each of :func:`key_facts` that differs."""
    a, b = key_facts(before), key_facts(after)
    return [f"{k} {a[k] or 'none'} -> {b[k] or 'none'}" for k in a if a[k] != b[k]]


def code_line(env: dict[str, Any]) -> str:
    code = env.get("code") or {}
    if not isinstance(code, dict) or not code.get("repository"):
        return "code: not in a git repository" + (
            f" ({code.get('error')})" if isinstance(code, dict) and code.get("error") else ""
        )
    commit = code.get("commit")
    line = f"code: {code['repository']} at {str(commit)[:12] if commit else 'no commit'}"
    if code.get("dirty"):
        parts = []
        if code.get("changed"):
            parts.append(
                f"{len(code['changed'])} changed file(s)" + (f", diff in {code['diff']}" if code.get("diff") else "")
            )
        if code.get("untracked"):
            parts.append(f"{len(code['untracked'])} untracked file(s)")
        line += " (dirty: " + "; ".join(parts) + ")"
    return line


def summary_line(env: dict[str, Any]) -> str:
    """One line: the code, pytest-sweep, Python, torch, CUDA and the GPUs."""
    facts = key_facts(env)
    parts = [
        code_line(env),
        f"pytest-sweep {_get(env, 'pytest_sweep', 'version')}",
        f"Python {_get(env, 'python', 'version')}",
    ]
    parts.append(f"torch {facts['torch']}" if facts["torch"] else "no torch")
    if facts["CUDA"]:
        parts.append(f"CUDA {facts['CUDA']}" + (f", cuDNN {facts['cuDNN']}" if facts["cuDNN"] else ""))
    parts.append(f"GPUs: {facts['GPUs']} (driver {facts['driver']})" if facts["GPUs"] else "no GPU")
    parts.append(f"host {_get(env, 'host', 'hostname')}")
    return "; ".join(parts)
