"""environment.yml (conda) and pyproject.toml must pin the same packages."""

import tomllib

import yaml
from conftest import REPO


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | {r for extra in project["optional-dependencies"].values() for r in extra}


def _conda_pip_requirements() -> tuple[str, set[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return python, {r for r in pip if not r.startswith("-")}


def test_environment_yml_agrees_with_pyproject():
    python, conda = _conda_pip_requirements()
    pyproject = _pyproject_requirements()
    assert conda == pyproject, f"only in environment.yml: {conda - pyproject}; only in pyproject: {pyproject - conda}"
    assert python == "python=3.11"


def test_torch_is_pinned_to_the_local_cpu_wheel_version():
    assert "torch==2.13.0" in _pyproject_requirements()
    assert all("==" in r for r in _pyproject_requirements()), "every dependency is pinned exactly"


def test_required_layout_exists():
    for name in ("notebooks", "rlhf_nb", "params", "tests", "figures", "environment.yml", "pyproject.toml",
                 "README.md", "Makefile", ".ci/run"):
        assert (REPO / name).exists(), name
    assert "make test" in (REPO / ".ci" / "run").read_text()
    head = (REPO / "README.md").read_text().splitlines()[:40]
    assert any("make reproduce" in line for line in head) and any("make test" in line for line in head)


def _imported_distributions() -> dict[str, str]:
    """Third-party distribution -> a library file that imports it (the sandbox's stdlib-only code excluded)."""
    import ast
    import importlib.metadata
    import sys

    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for path in sorted((REPO / "rlhf_nb").rglob("*.py")):
        if "sandbox" in path.relative_to(REPO / "rlhf_nb").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "rlhf_nb":
                    continue
                assert top in owners, f"{path.name} imports {top!r}, which no installed distribution provides"
                for dist in owners[top]:
                    found.setdefault(dist, path.name)
    return found


def test_every_library_import_is_a_declared_dependency():
    """A clean clone installs only what pyproject declares: an import that arrives by accident here fails CI."""
    import re

    declared = {re.split(r"[=<>!~\[ ]", r)[0].lower().replace("_", "-") for r in _pyproject_requirements()}
    missing = {dist: where for dist, where in _imported_distributions().items()
               if dist.lower().replace("_", "-") not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_prose_files_are_prose_sized():
    """A replace on an empty pattern once wrote a paragraph between every character of docs/notebooks.md (28 MB):
    every tracked Markdown file stays under 200 kB, and no line of more than 40 characters repeats 20 times."""
    import collections
    import subprocess

    files = subprocess.run(["git", "ls-files", "-z", "*.md"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout
    for name in filter(None, files.split("\0")):
        if not (REPO / name).is_file():  # deleted in the working tree, not yet committed
            continue
        text = (REPO / name).read_text()
        assert len(text) < 200_000, (name, len(text))
        lines = collections.Counter(line for line in text.splitlines() if len(line) > 40)
        assert not lines or max(lines.values()) < 20, (name, lines.most_common(1))
