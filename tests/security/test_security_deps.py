"""Requirement readers: requirements.txt (includes, continuations, hashes, markers, editables,
bad lines), pip freeze output, pyproject.toml, uv.lock, poetry.lock and installed environments."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpops.core.errors import UsageError
from rpops.steps.security import deps


def pins(result: deps.ReadResult) -> dict[str, str | None]:
    return {d.name: d.version for d in result.dependencies}


def test_requirements_with_includes_continuations_and_options(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n-c constraints.txt\n")
    (tmp_path / "constraints.txt").write_text("idna==2.5\n")
    (tmp_path / "requirements.txt").write_text(
        "# comment\n"
        "-r base.txt\n"
        "--index-url https://pypi.example.org/simple\n"
        "Jinja2==2.10 \\\n"
        "    --hash=sha256:74c935a1b8bb9a3947c50a54766a969d4846290e1e788ea44c1392163723c3bd\n"
        "requests[socks]==2.19.0 ; python_version >= '3.6'  # pinned with extras and a marker\n"
        "flask>=2.0\n"
        "-e git+https://example.org/repo.git#egg=thing\n"
        "pkg @ https://example.org/pkg-1.0.tar.gz\n"
        "not a requirement !!\n"
        "urllib3===1.24.1\n"
    )
    result = deps.read_requirements(tmp_path / "requirements.txt", tmp_path)
    assert pins(result) == {
        "six": "1.16.0",
        "idna": "2.5",
        "jinja2": "2.10",
        "requests": "2.19.0",
        "flask": None,
        "pkg": None,
        "urllib3": "1.24.1",
    }
    jinja = next(d for d in result.dependencies if d.name == "jinja2")
    assert (jinja.line, jinja.source, jinja.display_name) == (4, "requirements.txt", "Jinja2")
    codes = sorted(n.code for n in result.notices)
    assert codes == ["invalid-requirement", "not-pinned"]
    assert set(result.files) == {"requirements.txt", "base.txt", "constraints.txt"}


def test_include_loop_and_missing_include_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\nsix==1.0\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n-r missing.txt\n")
    result = deps.read_requirements(tmp_path / "a.txt", tmp_path)
    assert pins(result) == {"six": "1.0"}
    assert {n.code for n in result.notices} == {"include-loop", "unreadable"}


def test_pip_freeze_output(tmp_path: Path) -> None:
    (tmp_path / "freeze.txt").write_text("certifi==2024.2.2\n-e /src/app\nPyYAML==5.3\n")
    assert pins(deps.read_file(tmp_path / "freeze.txt", tmp_path)) == {"certifi": "2024.2.2", "pyyaml": "5.3"}


def test_pyproject_pep621_groups_and_poetry(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["jinja2==2.10", "httpx>=0.28"]\n'
        '[project.optional-dependencies]\ndev = ["pyyaml==5.3"]\n'
        '[dependency-groups]\ntest = ["pytest==8.0.0"]\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\nrequests = "2.19.0"\nflask = "^2.0"\n'
        'django = { version = "==3.2.0" }\n'
    )
    result = deps.read_file(tmp_path / "pyproject.toml", tmp_path)
    assert pins(result) == {
        "jinja2": "2.10",
        "httpx": None,
        "pyyaml": "5.3",
        "pytest": "8.0.0",
        "requests": "2.19.0",
        "flask": None,
        "django": "3.2.0",
    }
    assert next(d for d in result.dependencies if d.name == "jinja2").line == 3


def test_uv_lock_skips_the_project_itself(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { editable = "." }\n'
        '[[package]]\nname = "jinja2"\nversion = "2.10"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    result = deps.read_file(tmp_path / "uv.lock", tmp_path)
    assert pins(result) == {"jinja2": "2.10"}
    assert result.dependencies[0].line == 7 and result.dependencies[0].kind == "uv.lock"


def test_poetry_lock(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "PyYAML"\nversion = "5.3"\n\n[[package]]\nname = "six"\nversion = "1.16.0"\n'
    )
    assert pins(deps.read_file(tmp_path / "poetry.lock", tmp_path)) == {"pyyaml": "5.3", "six": "1.16.0"}


def test_installed_environment(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for name, version in (("Jinja2", "2.10"), ("PyYAML", "5.3")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert pins(deps.read_installed(str(tmp_path / "venv"), tmp_path)) == {"jinja2": "2.10", "pyyaml": "5.3"}
    assert pins(deps.read_installed(str(site), tmp_path)) == {"jinja2": "2.10", "pyyaml": "5.3"}
    current = deps.read_installed("current", tmp_path)
    assert "packaging" in pins(current)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "file not found"),
        ("pyproject.toml", "[project\n", "invalid TOML"),
        ("uv.lock", "[[package]\n", "invalid TOML"),
        ("other.toml", "a = 1\n", "unknown TOML file"),
        ("latin1.txt", b"caf\xe9==1.0\n", "cannot read"),
    ],
)
def test_bad_explicit_inputs_are_usage_errors(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        deps.read_file(path, tmp_path)


def test_installed_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        deps.read_installed(str(tmp_path / "nope"), tmp_path)


def test_discovery(tmp_path: Path) -> None:
    for name in (
        "requirements.txt",
        "requirements-dev.txt",
        "requirements.lock",
        "pyproject.toml",
        "uv.lock",
        "notes.txt",
        "other.lock",
    ):
        (tmp_path / name).write_text("")
    assert [p.name for p in deps.discover(tmp_path)] == [
        "requirements-dev.txt",
        "requirements.txt",
        "requirements.lock",
        "pyproject.toml",
        "uv.lock",
    ]
