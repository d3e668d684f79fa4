"""The package, its CLI entry point, and the agreement of CI with the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import sinotriage
from sinotriage.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", section, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_quickstart_has_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[0].startswith("pip install -e .") and "sinotriage " in commands[0]
    assert '".[test]"' in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-command"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == _quickstart_commands()[1]


def test_ci_fails_when_pytest_collects_nothing(tmp_path: Path) -> None:
    # a copy of the CI script in a tree whose README test command collects no tests
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    (tmp_path / "README.md").write_text(
        "# x\n\n## Quickstart\n\n```bash\necho first\n```\n\n```bash\n"
        f"{sys.executable} -m pytest -p no:cacheprovider -q nothing_here_dir_absent_ok\n```\n"
    )
    (tmp_path / "nothing_here_dir_absent_ok").mkdir()
    res = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode != 0
    assert "no tests" in res.stderr


def test_cli_help_and_version() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    assert "demo" in res.output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert sinotriage.__version__ in res.output


def test_console_script_is_installed() -> None:
    res = subprocess.run(["sinotriage", "--version"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"sinotriage {sinotriage.__version__}"


def test_public_api_names_resolve_lazily() -> None:
    """Every name of ``sinotriage.__all__`` resolves to the object its home module defines, and
    resolution is lazy: in a fresh interpreter ``import sinotriage`` imports neither torch nor any
    submodule, and touching ``sinotriage.project`` imports the operators and not the models."""
    import importlib
    import importlib.util

    assert set(dir(sinotriage)) == set(sinotriage.__all__)
    for name, home in sinotriage._EXPORTS.items():
        assert getattr(sinotriage, name) is getattr(importlib.import_module(home), name), name
    for name in sinotriage._SUBMODULES:  # each exists (importing all would take MONAI's 15 s)
        assert importlib.util.find_spec(f"sinotriage.{name}") is not None, name
    assert sinotriage.metrics is importlib.import_module("sinotriage.metrics")
    probe = (
        "import sys, sinotriage\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m == 'torch' or m.startswith('sinotriage.'))\n"
        "print(loaded())\n"
        "sinotriage.project\n"
        "print('sinotriage.operators' in sys.modules, 'sinotriage.models' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["[]", "True False"]


def test_readme_library_example_runs_without_warnings(tmp_path: Path) -> None:
    """The README's Python example runs as printed, and prints no warning (-W error)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Library example", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(code) == 1
    script = tmp_path / "example.py"
    script.write_text(code[0])
    res = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert "torch.Size([4, 128, 128])" in res.stdout
