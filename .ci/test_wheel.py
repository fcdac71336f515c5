"""End-to-end tests against the built wheel, installed normally into a virtual environment outside the checkout.

``make test`` (and so ``.ci/run``) runs this after the suite: a file the wheel lacks (package
data such as the digits), a mapping mistake in ``pyproject.toml`` or an entry point that only the
editable install provides fails here, where the editable install would hide it.

1. ``pip wheel`` builds the wheel of this checkout;
2. a new virtual environment in a temporary folder gets it with a regular ``pip install --no-deps``;
3. the dependencies (torch, ...) are borrowed from the environment running this script through a
   ``.pth`` file that lists folders of links to its ``site-packages`` entries, leaving out every
   ``pytest_sweep`` entry, so that the wheel is the only pytest-sweep that environment can see;
4. ``tests/``, ``defconfigs/``, ``conftest.py`` and ``pyproject.toml`` (pytest's settings) are
   copied next to it, and :data:`TESTS` run there, with plugin autoloading as a user has it.

    .venv/bin/python .ci/test_wheel.py            # what make test runs
    .venv/bin/python .ci/test_wheel.py --keep DIR  # keep the environment and the copy in DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A representative subset of the end-to-end tests, about a minute on 2 quiet CPUs: a real digits
#: sweep that writes every report (package data, the trainer, matplotlib, the HTML report in a
#: browser where Chromium is installed) and the console script on its folder; the light entry
#: point and what it loads; an unrelated ``-n 2`` run; a third-party plugin package.
TESTS = [
    "tests/test_e2e_report.py::test_the_sweep_writes_every_report",
    "tests/test_e2e_report.py::test_csv_has_the_json_columns",
    "tests/test_e2e_report.py::test_console_script_report_renders_the_same_files",
    "tests/test_e2e_report.py::test_html_report_sorts_on_a_real_click_in_a_browser",
    "tests/test_entry_point.py",
    "tests/test_inert.py",
    "tests/test_e2e_plugin_package.py",
]
COPIED = ["tests", "defconfigs", "conftest.py", "pyproject.toml"]


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    cmd = [str(a) for a in args]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def dependency_dirs() -> list[Path]:
    """The import folders of the running interpreter, outside the standard library and the checkout."""
    found: list[Path] = []
    for entry in sys.path:
        if not entry or not Path(entry).is_dir():
            continue
        path = Path(entry).resolve()
        # only site-packages folders (never the standard library or the checkout's sources); one
        # inside the checkout is fine, as CI's .venv is: the package itself is left out by name
        # in borrow().  (A venv's "platstdlib" is its lib/pythonX.Y, the parent of its
        # site-packages, so the standard library cannot be told apart by its parent.)
        if path not in found and ("site-packages" in path.parts or "dist-packages" in path.parts):
            found.append(path)
    return found


def borrow(deps: list[Path], links: Path, venv: Path) -> None:
    """Link every entry of ``deps`` except pytest-sweep's into ``links/N`` and list those in a ``.pth``."""
    folders = []
    for n, source in enumerate(deps):
        target = links / str(n)
        target.mkdir(parents=True)
        for entry in source.iterdir():
            name = entry.name
            if name.startswith(("pytest_sweep", "__editable__", "_pytest_sweep")) or name.endswith(".pth"):
                continue
            (target / name).symlink_to(entry)
        folders.append(str(target))
    purelib = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    (Path(purelib) / "_borrowed_dependencies.pth").write_text("\n".join(folders) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="build everything in this folder and keep it")
    ap.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the subset in TESTS)")
    args = ap.parse_args()
    root = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="pytest-sweep-wheel-"))
    if root.is_relative_to(REPO):
        sys.exit(f"{root} is inside the checkout; choose a folder outside it")
    try:
        dist, venv, project = root / "dist", root / "venv", root / "project"
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, REPO)
        (wheel,) = dist.glob("pytest_sweep-*.whl")
        run(sys.executable, "-m", "venv", "--without-pip", venv)
        run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps", wheel)
        borrow(dependency_dirs(), root / "deps", venv)
        project.mkdir()
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, project / name)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
        env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        python = venv / "bin" / "python"
        where = run(
            python,
            "-c",
            "import importlib.metadata as m, pytest_sweep, pytest_sweep.entry;"
            "from pytest_sweep.trainers.digits import digits_file;"
            "dists = [d for d in m.distributions() if d.metadata['Name'] == 'pytest-sweep'];"
            "assert len(dists) == 1, [str(d.locate_file('')) for d in dists];"
            "print(pytest_sweep.__file__); print(digits_file()); print(dists[0].locate_file('pytest_sweep'))",
            cwd=project,
            env=env,
        ).split()
        site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", env=env).strip()
        for path in where:
            if not Path(path).is_relative_to(site) or not Path(path).exists():
                sys.exit(f"the wheel's environment does not use the wheel: {path} (expected under {site})")
        print(f"pytest-sweep from the wheel {wheel.name}: {where[0]}", flush=True)
        cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *(args.pytest_args or TESTS)]
        print("+", " ".join(cmd), flush=True)
        return subprocess.run(cmd, cwd=project, env=env).returncode
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
