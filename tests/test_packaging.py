"""The built wheel is the whole product: built from the checkout's tracked files, installed into a fresh venv
outside the checkout, it knows every corpus manifest and toy model and runs `featuretests corpora`, `models` and a
search on python-stdlib (issue 24.1).

The fresh venv downloads nothing: it is made with ``--without-pip`` and sees the dependencies already installed in
the project's venv through a ``.pth`` file naming a folder of links to them, every entry except featuretests's own
(its editable install would otherwise shadow the wheel). Each test checks it runs the installed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from featuretests.corpora.registry import MANIFEST_DIR, list_corpora

ROOT = Path(__file__).resolve().parents[1]
TOY_MODELS = ("toy-gelu-1l", "toy-solu-1l", "toy-gelu-2l", "toy-solu-2l")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    """A wheel built from the checkout and the fresh venv it is installed in; `run` runs from outside the checkout."""

    wheel: Path
    venv: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a program of the venv's bin/ (e.g. "featuretests", "python") in `workdir`; fail with its stderr."""
        program = str(self.venv / "bin" / args[0])
        proc = subprocess.run(
            [program, *args[1:]], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        return proc


def _tracked_files() -> list[str]:
    """The working tree's files that git tracks or does not ignore (what a commit of it would hold)."""
    try:
        cmd = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the wheel is built from the git checkout's tracked files; git ls-files failed here ({exc})")
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def _copy_tracked(dest: Path) -> None:
    for name in dict.fromkeys(_tracked_files()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def _build_wheel(src: Path, out: Path) -> Path:
    """``pip wheel`` of `src` with the project venv's setuptools (no build isolation, no index: nothing fetched)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out)]
    proc = subprocess.run([*cmd, str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    (wheel,) = out.glob("featuretests-*.whl")
    return wheel


def _link_dependencies(dest: Path) -> Path:
    """A folder of links to everything in this venv's site-packages except featuretests's own entries."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.startswith(("featuretests", "__editable__")):
            (dest / entry.name).symlink_to(entry)
    return dest


def _make_venv(venv: Path, deps: Path, wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_featuretests_deps.pth").write_text(f"{deps}\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"installing the wheel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    _copy_tracked(src)
    wheel = _build_wheel(src, base / "dist")
    venv = base / "venv"
    _make_venv(venv, _link_dependencies(base / "deps"), wheel)
    workdir = base / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FEATURETESTS_DATA", "FEATURETESTS_CORPORA")}
    env.update(HF_HUB_OFFLINE="1", VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return Installed(wheel, venv, workdir, env)


def test_the_wheel_holds_every_data_file_of_the_package(installed: Installed) -> None:
    """Every tracked non-Python file under featuretests/ (manifests, toy weights, tokenizers, model cards) is in the
    wheel, and nothing of the repository outside the package is."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    data = [n for n in _tracked_files() if n.startswith("featuretests/") and not n.endswith(".py")]
    assert data, "no data files tracked under featuretests/"
    assert sorted(set(data) - names) == []
    assert {f"featuretests/corpora/manifests/{p.name}" for p in MANIFEST_DIR.glob("*.toml")} <= names
    assert not [n for n in names if n.startswith(("tests/", "corpora/", "hypotheses/", "scripts/"))]


def test_the_venv_imports_the_installed_wheel_not_the_checkout(installed: Installed) -> None:
    proc = installed.run("python", "-c", "import featuretests as ft; print(ft.__file__); print(len(ft.list_corpora()))")
    location, count = proc.stdout.split()
    assert Path(location).is_relative_to(installed.venv), location
    assert not Path(location).resolve().is_relative_to(ROOT)
    assert int(count) == len(list_corpora())


def test_installed_corpora_and_models_commands(installed: Installed) -> None:
    rows = json.loads(installed.run("featuretests", "corpora", "--json").stdout)
    assert [r["name"] for r in rows] == list_corpora()
    available = {r["name"] for r in rows if r["available"]}
    assert {"python-stdlib", "synthetic-brackets"} <= available
    models = installed.run("featuretests", "models").stdout
    assert all(name in models for name in TOY_MODELS), models


def test_installed_search_on_python_stdlib(installed: Installed) -> None:
    """A whole search from the installed package: the shipped toy model over the standard library (~45 s)."""
    cache = installed.workdir / "cache"
    args = ("search", "t.text == ' self'", "--corpus", "python-stdlib", "--cache-dir", str(cache), "--device", "cpu")
    found = json.loads(installed.run("featuretests", *args, "--json").stdout)
    assert found["corpus"] == "python-stdlib" and found["best"] == found["top"][0]["neuron"]
    assert found["top"][0]["value"] > 0.9 and found["top"][0]["significant"]
