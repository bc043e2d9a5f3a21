"""The step image's install, replayed without Docker (no engine runs here).

images/steps/Dockerfile builds the project's wheel, collects wheels of its runtime dependencies
at the versions in requirements.lock, installs them into a venv with no pip, and runs `rpops` as
uid 1000. This test does the same steps with the same commands: the build context is what the
Dockerfile COPYs, dependency wheels are rebuilt from this venv (tests cannot download), the venv
is made as root and everything after runs as uid 1000 (setpriv), from a directory outside the
source tree. Then `rpops --help`, every step's `--help`, and the platform image's HEALTHCHECK
against a workload served from that venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version
from rpops.core.cli import commands

from .helpers import ROOT
from .wheels import repack, runtime_closure

STEPS_DOCKERFILE = ROOT / "images" / "steps" / "Dockerfile"
PLATFORM_DOCKERFILE = ROOT / "images" / "platform" / "Dockerfile"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")  # as .dockerignore
UID = 1000


def _as_user() -> list[str]:
    """Run as uid/gid 1000 (the image's USER) when we are root; non-root already is."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop to uid 1000"
    return [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--"]


def _run(argv: list[str], *, timeout: float = 120.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert result.returncode == 0, (
        f"{shlex.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _builder_copies(dockerfile: Path) -> list[str]:
    """Sources of the builder stage's COPY instructions (the build context it needs)."""
    sources: list[str] = []
    stage = None
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stage = words[-1] if "AS" in words else None
        elif words[:1] == ["COPY"] and stage == "builder":
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return list(dict.fromkeys(sources))  # a source copied twice (to the wheel build and to /stage) once


@dataclass(frozen=True)
class Image:
    root: Path
    venv: Path
    env: dict[str, str]
    distributions: list[str]  # what the runtime venv holds, by name

    def rpops(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return _run([*_as_user(), str(self.venv / "bin" / "rpops"), *args], env=self.env, cwd=self.root,
                    timeout=timeout)


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    root = Path(tempfile.mkdtemp(prefix="rpops-image-"))
    try:
        root.chmod(0o755)
        pip_env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                   "PIP_NO_CACHE_DIR": "1"}
        pip = [sys.executable, "-m", "pip"]

        # Builder: the context the Dockerfile copies, then `pip wheel --no-deps` of it.
        context = root / "src"
        context.mkdir()
        for source in _builder_copies(STEPS_DOCKERFILE):
            origin = ROOT / source
            assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
            if origin.is_dir():
                shutil.copytree(origin, context / source, ignore=IGNORED)
            else:
                shutil.copy2(origin, context / source)
        dist = root / "dist"
        # Offline when this venv can build the wheel itself; else pip's isolated build, as in Docker.
        try:
            offline = Version(metadata.version("setuptools")) >= Version("70.1")
        except metadata.PackageNotFoundError:
            offline = False
        _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(dist),
              *(["--no-build-isolation"] if offline else []), str(context)], env=pip_env, cwd=root)
        (wheel,) = dist.glob("rpops-*.whl")

        # Builder: wheels of the runtime dependencies at the locked versions (--constraint).
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            requires = Parser().parsestr(archive.read(name).decode()).get_all("Requires-Dist") or []
        available = root / "available"
        available.mkdir()
        closure = runtime_closure([r for r in requires if "extra ==" not in r])
        for installed in closure:
            repack(installed, available)
        wheels = root / "wheels"
        _run([*pip, "wheel", "--no-index", "--find-links", str(available), "--only-binary=:all:",
              "--constraint", str(ROOT / "requirements.lock"), "--wheel-dir", str(wheels), str(wheel)],
             env=pip_env, cwd=root)

        # Final stage: a venv without pip, filled from the wheels only.
        venv = root / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
        _run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-index", "--no-cache-dir",
              "--find-links", str(wheels), "rpops"], env=pip_env, cwd=root)
        _run(["chmod", "-R", "a+rX", str(root)])

        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1"}
        listing = _run([*_as_user(), str(venv / "bin" / "python"), "-c",
                        "import json, importlib.metadata as m; "
                        "print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))"],
                       env=env, cwd=root)
        yield Image(root, venv, env, json.loads(listing.stdout))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_image_holds_the_wheel_and_only_its_runtime_dependencies(image: Image) -> None:
    names = {n.lower().replace("_", "-") for n in image.distributions}
    assert "rpops" in names
    for dev_only in ("hera", "pytest", "mypy", "ruff", "kmock", "jsonschema", "pip", "setuptools"):
        assert dev_only not in names, f"{dev_only} is in the runtime image"
    # Every declared requirement is satisfied (pip's own check, from the test's pip).
    _run([sys.executable, "-m", "pip", "--python", str(image.venv / "bin" / "python"), "check"],
         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})


def test_rpops_and_every_step_answer_help_as_uid_1000(image: Image) -> None:
    assert "ENTRYPOINT [\"rpops\"]" in STEPS_DOCKERFILE.read_text()
    assert re.search(r"^USER 1000:1000$", STEPS_DOCKERFILE.read_text(), re.M)
    who = _run([*_as_user(), "id", "-u"], env=image.env)
    assert who.stdout.strip() == str(UID) or os.geteuid() != 0
    top = image.rpops("--help")
    for command in commands():
        assert command in top.stdout
    assert image.rpops("--version").stdout.strip() == metadata.version("rpops")
    assert "health-check" in commands() and "workload" in commands()
    for command in commands():
        out = image.rpops(command, "--help").stdout
        assert out.startswith(f"usage: rpops {command}"), f"{command}: {out[:200]}"


def _healthcheck_command() -> list[str]:
    match = re.search(r"^\s*CMD (\[.*\])$", PLATFORM_DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1], re.M)
    assert match, "images/platform/Dockerfile has no HEALTHCHECK CMD"
    command: list[str] = json.loads(match.group(1))
    return command


def _serve(image: Image, *extra: str) -> tuple[subprocess.Popen[str], int]:
    rundir = Path(tempfile.mkdtemp(prefix="serve-", dir=image.root))
    os.chown(rundir, UID, UID) if os.geteuid() == 0 else None
    port_file = rundir / "port"
    process = subprocess.Popen([*_as_user(), str(image.venv / "bin" / "rpops"), "workload", "serve",
                                "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file),
                                "--version", "v1", *extra],
                               env=image.env, cwd=rundir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 20
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None:
            raise AssertionError(f"workload exited: {process.stderr.read() if process.stderr else ''}")
        assert time.monotonic() < deadline, "workload did not start"
        time.sleep(0.05)
    return process, int(port_file.read_text())


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_platform_healthcheck_passes_when_healthy_and_fails_when_not(image: Image) -> None:
    command = _healthcheck_command()
    assert command[0] == "python" and "curl" not in " ".join(command)
    assert '"workload", "serve", "--host", "0.0.0.0", "--port", "8000"' in PLATFORM_DOCKERFILE.read_text()
    for faults, healthy in (((), True), (("--fault", "unhealthy=true"), False)):
        process, port = _serve(image, *faults)
        try:
            argv = [str(image.venv / "bin" / "python"), *command[1:]]
            argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv]
            result = subprocess.run([*_as_user(), *argv], env=image.env, capture_output=True, text=True,
                                    timeout=30, check=False)
            assert (result.returncode == 0) is healthy, result.stderr
        finally:
            _stop(process)


# --- the security scan's data in the step image ----------------------------------------------------

DB_IN_IMAGE = "/opt/rpops/advisories"
SRC_IN_IMAGE = "/opt/rpops/src"


def _final_copies_from_stage(dockerfile: Path) -> dict[str, str]:
    """`COPY --from=builder /stage/X /opt/rpops/X` of the final stage: image path -> staged name."""
    found = {}
    for match in re.finditer(r"^COPY --from=builder /stage/(\S+) (\S+)$", dockerfile.read_text(), re.M):
        found[match.group(2)] = match.group(1)
    return found


def _staging_copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """The builder's `COPY <sources> /stage/...` instructions: (context sources, destination)."""
    copies = []
    for match in re.finditer(r"^COPY ((?:\S+ )+)(/stage/\S*)$", dockerfile.read_text(), re.M):
        copies.append((match.group(1).split(), match.group(2)))
    return copies


def _docker_copy(sources: list[str], dest: Path, into: bool) -> None:
    """COPY's rule: a directory's contents go into the destination; a file goes to the destination,
    or into it when it ends with '/' (`into`)."""
    for source in sources:
        origin = ROOT / source
        assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
        if origin.is_dir():
            shutil.copytree(origin, dest, ignore=IGNORED, dirs_exist_ok=True)
        else:
            target = dest / origin.name if into or len(sources) > 1 else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def _index_command(dockerfile: Path) -> list[str]:
    """The final stage's `RUN rpops advisories info ...` up to the first `&&`, as argv."""
    text = dockerfile.read_text().replace("\\\n", " ")
    match = re.search(r"^RUN (rpops advisories info [^&\n]*)", text, re.M)
    assert match, "images/steps/Dockerfile does not build the advisory index (rpops advisories info)"
    return shlex.split(match.group(1))


@pytest.fixture(scope="module")
def scan_data(image: Image) -> dict[str, Path]:
    """The image's /opt/rpops/src and /opt/rpops/advisories, staged and indexed as the Dockerfile
    does: copied from the build context, readable by all, whole-second mtimes, then the index
    written into the database by the Dockerfile's own command, as root (before USER 1000)."""
    copies = _final_copies_from_stage(STEPS_DOCKERFILE)
    assert copies == {SRC_IN_IMAGE: "src", DB_IN_IMAGE: "advisories"}, copies
    stage = image.root / "stage"
    for sources, dest in _staging_copies(STEPS_DOCKERFILE):
        _docker_copy(sources, stage / dest.removeprefix("/stage/"), into=dest.endswith("/"))
    places = {}
    for image_path, name in copies.items():  # COPY --from=builder /stage/<name> <image_path>
        places[image_path] = image.root / "opt" / name
        shutil.copytree(stage / name, places[image_path])
    _run(["chmod", "-R", "a+rX", str(image.root / "opt")])
    _run(["find", str(image.root / "opt"), "-exec", "touch", "-h", "-d", "@0", "{}", "+"])
    argv = [a.replace(DB_IN_IMAGE, str(places[DB_IN_IMAGE])) for a in _index_command(STEPS_DOCKERFILE)]
    build_cache = image.root / "build-cache"
    argv = [str(build_cache) if a == "/tmp/rpops-build-cache" else a for a in argv]
    assert argv[:3] == ["rpops", "advisories", "info"] and "--write-index" in argv
    out = _run([str(image.venv / "bin" / argv[0]), *argv[1:]], env=image.env, cwd=image.root)
    assert "2661 records" in out.stdout
    shutil.rmtree(build_cache)
    return {"src": places[SRC_IN_IMAGE], "db": places[DB_IN_IMAGE]}


def test_dockerignore_lets_the_advisory_snapshot_into_the_context() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*" and "!tests/data/advisories/" in rules
    assert not any(r.startswith("tests") and not r.startswith("!") for r in rules)
    assert re.search(r"^\s+RPOPS_CACHE_DIR=/tmp/rpops-cache$", STEPS_DOCKERFILE.read_text(), re.M)


def test_security_scan_of_the_image_defaults_as_uid_1000_uses_the_baked_index(
        image: Image, scan_data: dict[str, Path]) -> None:
    db, src = scan_data["db"], scan_data["src"]
    assert (db / ".rpops-index.json").is_file() and (db / "LICENSE").is_file()
    assert (src / "steps" / "rpops" / "steps" / "security" / "__init__.py").is_file()
    before = sorted(p.name for p in db.iterdir())
    work = Path(tempfile.mkdtemp(prefix="scan-", dir=image.root))  # the pod's writable /tmp
    os.chown(work, UID, UID) if os.geteuid() == 0 else None
    env = {**image.env, "RPOPS_OUTPUTS": str(work / "outputs"), "RPOPS_CACHE_DIR": str(work / "cache")}
    # The template's defaults: the image's source, its installed environment, its database.
    result = subprocess.run(
        [*_as_user(), str(image.venv / "bin" / "rpops"), "security-scan", "--target", str(src),
         "--installed", str(image.venv), "--manifests", "", "--db", str(db), "--max-db-age", "0",
         "--jobs", "2"],
        env=env, cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("security-scan PASS: 0 critical"), result.stdout
    report = json.loads((work / "outputs" / "report.json").read_text())
    assert report["scanned"]["advisory_db"]["index"] == f"cached:{db / '.rpops-index.json'}"
    assert report["scanned"]["advisory_db"]["records"] == 2661
    deps = report["scanned"]["dependencies"]
    assert f"installed:{image.venv}" in deps["files"] and deps["packages_checked"] >= 10
    assert report["scanned"]["code"]["files_scanned"] >= 50
    assert sorted(p.name for p in db.iterdir()) == before  # the read-only copy was left alone
    assert not (work / "cache" / "advisory-index").exists()  # and its index was not rebuilt
    assert (work / "outputs" / "status").read_text() == "pass"
