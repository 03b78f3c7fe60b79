"""CI runs exactly the README's two set-up commands."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands():
    readme = ROOT.joinpath("README.md").read_text()
    ci = ROOT.joinpath(".ci", "run").read_text()
    blocks = [b.split("```")[0].strip() for b in readme.split("```sh\n")[1:3]]
    install, test = blocks
    assert "pip install -e '.[dev]'" in install and "pytest" in test
    assert install in ci and test in ci
