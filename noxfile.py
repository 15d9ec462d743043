"""Sessions: the suite's own tests, lint, the long reference sweep, the conformance lanes and
the regression checks (`regression`: two releases of one framework; `diff-baseline`: the
pinned versions against the committed baseline). See docs/regression.md.

Every session installs from constraints/cpu.txt, the exact versions CI uses
(torch 2.13.0 is the CPU build from pip's find-links); `regression` installs older releases
with the companion pins of `REGRESSION_LANES` instead.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nox
from packaging.version import InvalidVersion, Version

nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
CONSTRAINTS = ("-c", "constraints/cpu.txt")


def _install(session: nox.Session, extras: str = "all,dev") -> None:
    session.install("-e", f".[{extras}]", *CONSTRAINTS)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The suite's own tests (reference vs mpmath, budgets, adapters), every framework installed."""
    _install(session)
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHON)
def sweep(session: nox.Session) -> None:
    """The long Hypothesis sweeps (tests marked slow): more examples against mpmath."""
    _install(session)
    session.run("pytest", "-m", "slow", *session.posargs)


FRAMEWORK_EXTRAS = {
    "scipy": "scipy",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "all",
    "jax": "jax",
    "onnxruntime": "onnxruntime",
}
"""Each conformance lane installs only its framework (keras runs on every backend)."""


def _conformance(session: nox.Session, frameworks: list[str], extras: str) -> None:
    _install(session, extras)
    args = [a for name in frameworks for a in ("--framework", name)]
    out = f"reports/results-{session.name.removeprefix('conformance-') or 'all'}.jsonl"
    session.run("conformance", "run", *args, "--out", out, *session.posargs)


@nox.session(python=PYTHON, name="conformance")
def conformance_all(session: nox.Session) -> None:
    """Every framework; posargs go to `conformance run` (e.g. -- --profile ci)."""
    _conformance(session, [], "all")


def _lane(framework: str) -> None:
    def lane(session: nox.Session) -> None:
        _conformance(session, [framework], FRAMEWORK_EXTRAS[framework])

    lane.__doc__ = f"The {framework} lane: `conformance run --framework {framework}`."
    nox.session(python=PYTHON, name=f"conformance-{framework}")(lane)


for _framework in FRAMEWORK_EXTRAS:
    _lane(_framework)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff", *CONSTRAINTS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# ------------------------------------------------------------------ regression across releases

CPU_CONSTRAINTS = Path(__file__).resolve().parent / "constraints" / "cpu.txt"
REGRESSION_ENVS = Path(".nox")
REPORTS = Path("reports")
BASELINE = Path("baselines/cpu-quick.jsonl.xz")


@dataclass(frozen=True)
class Lane:
    """How to install one framework lane at a given release for `nox -s regression`.

    The environment gets the suite (`-e .`), `install` (with the release substituted for
    `{version}`) and the companion pins of the newest row in `companions` whose first release
    is at or below the requested one. Everything else stays at constraints/cpu.txt; a companion
    pinned to None is dropped from the constraints and left to pip.
    """

    install: tuple[str, ...]
    controls: tuple[str, ...]
    """Distributions `install` pins itself (dropped from constraints/cpu.txt)."""
    companions: tuple[tuple[str, dict[str, str | None]], ...]
    """(first release covered, {distribution: version}), oldest first."""
    only: tuple[str, ...] = ()
    """If set, the only releases this machine may install (torch: the CPU wheel in find-links)."""

    def row(self, framework: str, release: str) -> dict[str, str | None]:
        """The companion pins for `release`; a nox-friendly error for one the table lacks."""
        try:
            wanted = Version(release)
        except InvalidVersion:
            raise ValueError(f"{framework} {release!r} is not a version") from None
        if self.only and release not in self.only:
            raise ValueError(
                f"{framework} {release}: this lane installs only {', '.join(self.only)} here "
                "(other torch versions pull the CUDA stack; see docs/regression.md)"
            )
        rows = [pins for first, pins in self.companions if Version(first) <= wanted]
        if not rows:
            oldest = self.companions[0][0]
            raise ValueError(
                f"{framework} {release}: older than the pin table covers ({oldest}); add a row "
                "to REGRESSION_LANES in noxfile.py"
            )
        return rows[-1]


_JAX_04 = {"numpy": "1.26.4", "scipy": "1.12.0", "ml_dtypes": "0.4.1"}
_JAX_05 = {"numpy": "2.2.6", "scipy": "1.15.3", "ml_dtypes": "0.5.1"}
_TF_216 = {"numpy": "1.26.4", "ml_dtypes": "0.3.2", "protobuf": "4.25.9"}
_TF_218 = {"numpy": "2.0.2", "ml_dtypes": "0.5.1", "protobuf": "5.29.6"}
_KERAS_30 = {**_TF_216, "tensorflow-cpu": "2.16.2", "jax": "0.4.30", "jaxlib": "0.4.30"}
_KERAS_35 = {**_TF_218, "tensorflow-cpu": "2.18.1", "jax": "0.5.3", "jaxlib": "0.5.3"}

REGRESSION_LANES: dict[str, Lane] = {
    "jax": Lane(
        install=("jax[cpu]=={version}", "optax"),
        controls=("jax", "jaxlib"),
        companions=(
            # optax 0.2.2: no `where`, no safe_softmax_cross_entropy (those cells error).
            ("0.4.20", {**_JAX_04, "optax": "0.2.2"}),
            # optax 0.2.5 (the last for jax < 0.5.3): smooth_labels has no axis/where.
            ("0.4.27", {**_JAX_04, "optax": "0.2.5"}),
            ("0.5.0", {**_JAX_05, "optax": "0.2.5"}),
            ("0.5.3", {**_JAX_05}),  # optax 0.2.8 (cpu.txt) needs jax >= 0.5.3
            ("0.7.0", {}),  # constraints/cpu.txt as is: numpy 2.4, ml_dtypes 0.6
        ),
    ),
    "optax": Lane(
        install=("optax=={version}", "jax[cpu]"),
        controls=("optax",),
        companions=(
            # optax 0.2.4-0.2.7 with jax 0.5.3, the first jax optax 0.2.8 (cpu.txt) accepts.
            ("0.2.4", {**_JAX_05, "jax": "0.5.3", "jaxlib": "0.5.3", "chex": "0.1.89"}),
            ("0.2.8", {}),
        ),
    ),
    "tensorflow": Lane(
        install=("tensorflow-cpu=={version}",),
        controls=("tensorflow-cpu", "tensorflow"),
        companions=(
            # 2.15 needs ml_dtypes~=0.2 (the suite needs >= 0.3) and Keras 2: not covered.
            ("2.16.1", {**_TF_216}),
            ("2.17.0", {**_TF_216, "ml_dtypes": "0.4.1"}),
            ("2.18.0", {**_TF_218}),
            ("2.19.0", {**_TF_218, "numpy": "2.1.3"}),
            ("2.20.0", {}),
        ),
    ),
    "keras": Lane(
        # Every backend: keras-tensorflow, keras-jax, keras-torch.
        install=("keras=={version}", "tensorflow-cpu", "jax[cpu]", "torch"),
        controls=("keras",),
        companions=(
            # torch stays 2.13.0 (the CPU wheel) throughout.
            ("3.0.0", {**_KERAS_30, "scipy": "1.12.0"}),  # TensorFlow 2.16, numpy 1.26
            ("3.5.0", {**_KERAS_35, "scipy": "1.15.3"}),  # TensorFlow 2.18, numpy 2.0
            ("3.10.0", {"tensorflow-cpu": "2.20.0"}),  # tensorflow-cpu 2.20 needs keras >= 3.10
            ("3.12.0", {}),  # tensorflow-cpu 2.21 (cpu.txt) needs keras >= 3.12
        ),
    ),
    "scipy": Lane(
        install=("scipy=={version}",),
        controls=("scipy",),
        companions=(
            ("1.11.0", {"numpy": "1.26.4", "ml_dtypes": "0.4.1"}),
            ("1.13.0", {"numpy": "2.0.2", "ml_dtypes": "0.5.1"}),
            ("1.14.0", {"numpy": "2.1.3", "ml_dtypes": "0.5.1"}),
            ("1.15.0", {"numpy": "2.2.6", "ml_dtypes": "0.5.1"}),
            ("1.16.0", {}),
        ),
    ),
    "onnxruntime": Lane(
        install=("onnxruntime=={version}", "onnx"),  # onnx builds the models
        controls=("onnxruntime",),
        companions=(
            ("1.17.0", {"numpy": "1.26.4", "ml_dtypes": "0.4.1", "onnx": "1.16.2"}),
            ("1.19.0", {}),  # numpy 2 wheels; the models are IR 8 whatever onnx writes
        ),
    ),
    "torch": Lane(
        install=("torch=={version}",),
        controls=("torch",),
        companions=(("2.13.0", {}),),
        only=("2.13.0",),
    ),
}
"""The version-pin table: which companion versions go with which framework release."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    return _normalise(re.split(r"[\s\[=<>!~;@]", line.strip(), maxsplit=1)[0])


def regression_install(
    framework: str, release: str, extra: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(pip install arguments, constraints lines) for `framework` at `release`; `extra`
    pins override the lane's companions (a real-bug pair's own era)."""
    if framework not in REGRESSION_LANES:
        raise ValueError(
            f"unknown framework {framework!r}: choose from {', '.join(REGRESSION_LANES)}"
        )
    lane = REGRESSION_LANES[framework]
    pins = {**lane.row(framework, release), **(extra or {})}
    requirements = [r.format(version=release) for r in lane.install]
    requirements += [f"{name}=={v}" for name, v in pins.items() if v is not None]
    dropped = {_normalise(n) for n in (*lane.controls, *pins)}
    constraints = [
        line
        for line in CPU_CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith("#") and _requirement_name(line) not in dropped
    ]
    return ["-e", ".", *requirements], constraints


def _regression_env(
    session: nox.Session, framework: str, release: str, extra: dict[str, str] | None = None
) -> Path:
    """A virtualenv under .nox/ with the suite and `framework` at `release` (reused while the
    pins, pyproject.toml and constraints/cpu.txt are unchanged). Returns its bin directory."""
    try:
        args, constraints = regression_install(framework, release, extra)
    except ValueError as exc:
        session.error(str(exc))
    suffix = hashlib.sha256(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:8]
    env = REGRESSION_ENVS / f"regression-{framework}-{release}{'-' + suffix if extra else ''}"
    bindir = env / "bin"
    stamp = env / ".regression-stamp"
    inputs = json.dumps([args, constraints, Path("pyproject.toml").read_text()])
    digest = hashlib.sha256(inputs.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (bindir / "conformance").exists():
        session.log(f"Reusing {env} ({framework} {release})")
        return bindir
    session.log(f"Creating {env}: {framework} {release}")
    session.run(
        sys.executable, "-m", "virtualenv", "--clear", "-q", "-p", PYTHON, str(env), external=True
    )
    constraints_file = env / "constraints.txt"
    constraints_file.write_text("\n".join(constraints) + "\n")
    session.run(
        str(bindir / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        *args,
        "-c",
        str(constraints_file),
        external=True,
    )
    session.run(str(bindir / "python"), "-m", "pip", "freeze", "-q", external=True)
    stamp.write_text(digest)
    return bindir


def _diff(session: nox.Session, bindir: Path, old: Path, new: Path, text: Path) -> None:
    """`conformance diff OLD NEW`, printed and saved to `text`; the session fails on a
    regression (after everything else is written)."""
    out = session.run(
        str(bindir / "conformance"),
        "diff",
        str(old),
        str(new),
        external=True,
        silent=True,
        success_codes=[0, 1],
    )
    out = out or ""
    text.write_text(out)
    print(out, end="")
    if not out.rstrip().endswith("result: no regressions"):
        session.error(f"regressions: see {text} and the report")


def _suite_digest() -> str:
    """A hash of the suite's code: both releases must be judged by the same one."""
    h = hashlib.sha256()
    root = CPU_CONSTRAINTS.parent.parent
    for path in sorted((*root.glob("conformance/**/*"), *root.glob("adapters/**/*"))):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@nox.session(venv_backend="none")
def regression(session: nox.Session) -> None:
    """`nox -s regression -- FRAMEWORK OLD NEW [conformance run options]`: the quick corpus
    (seed 0) on two releases, diffed; writes reports/regression-FRAMEWORK-*.jsonl/.html/.txt."""
    if len(session.posargs) < 3 or session.posargs[0].startswith("-"):
        session.error(
            "usage: nox -s regression -- FRAMEWORK OLD NEW [conformance run options], "
            f"FRAMEWORK one of {', '.join(REGRESSION_LANES)}"
        )
    framework, old, new, *run_args = session.posargs
    for release in (old, new):  # refuse before installing anything
        try:
            regression_install(framework, release)
        except ValueError as exc:
            session.error(str(exc))
    REPORTS.mkdir(exist_ok=True)
    suite = _suite_digest()
    results: dict[str, Path] = {}
    bindirs: dict[str, Path] = {}
    for release in dict.fromkeys((old, new)):
        bindirs[release] = _regression_env(session, framework, release)
    for side, release in (("old", old), ("new", new)):
        bindir = bindirs[release]
        rerun = "-rerun" if side == "new" and old == new else ""  # a reproducibility check
        out = REPORTS / f"regression-{framework}-{release}{rerun}.jsonl"
        session.run(
            str(bindir / "conformance"),
            "run",
            "--framework",
            framework,
            "--profile",
            "quick",
            "--seed",
            "0",
            *run_args,
            "--out",
            str(out),
            external=True,
            success_codes=[0, 1],  # 1: findings, which old releases are expected to have
        )
        results[side] = out
    if _suite_digest() != suite:
        session.warn(
            "conformance/ or adapters/ changed during the run (both environments use this "
            "checkout, editable): the two releases were judged by different code; run again "
            "from a checkout nobody edits"
        )
    newest = bindirs[new]
    html = REPORTS / f"regression-{framework}.html"
    session.run(
        str(newest / "conformance"),
        "report",
        str(results["new"]),
        "--baseline",
        str(results["old"]),
        "-o",
        str(html),
        external=True,
    )
    text = REPORTS / f"regression-{framework}.txt"
    _diff(session, newest, results["old"], results["new"], text)


HISTORY_REPORTS = REPORTS / "history"


def history_arguments(posargs: list[str]) -> tuple[str, list[str], list[str]]:
    """(framework, releases oldest first, conformance run options) of `nox -s history`."""
    framework, *rest = posargs or [""]
    releases = []
    while rest and not rest[0].startswith("-"):
        releases.append(rest.pop(0))
    if framework not in REGRESSION_LANES or len(releases) < 2:
        raise ValueError(
            "usage: nox -s history -- FRAMEWORK V1 V2 [V3 ...] [conformance run options], "
            f"FRAMEWORK one of {', '.join(REGRESSION_LANES)}, releases oldest first"
        )
    if sorted(releases, key=Version) != releases or len(set(releases)) < len(releases):
        raise ValueError(f"releases oldest first, each once: {' '.join(releases)}")
    return framework, releases, rest


@nox.session(venv_backend="none")
def history(session: nox.Session) -> None:
    """`nox -s history -- FRAMEWORK V1 V2 ... [conformance run options]`: the quick corpus
    (seed 0) on each release in its own cached environment, then one report of how every
    cell changed from release to release (`conformance history`). Writes
    reports/history/FRAMEWORK.html/.md and one results file per release (kept: a rerun
    resumes them)."""
    try:
        framework, releases, run_args = history_arguments(list(session.posargs))
        for release in releases:  # refuse before installing anything
            regression_install(framework, release)
    except ValueError as exc:
        session.error(str(exc))
    out_dir = HISTORY_REPORTS / framework
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for release in releases:
        bindir = _regression_env(session, framework, release)
        out = out_dir / f"{framework}-{release}.jsonl"
        session.run(
            str(bindir / "conformance"),
            "run",
            "--framework",
            framework,
            "--profile",
            "quick",
            "--seed",
            "0",
            *run_args,
            "--resume",
            "--out",
            str(out),
            external=True,
            success_codes=[0, 1],  # 1: findings, which releases are expected to have
        )
        results.append(str(out))
    session.run(
        str(_regression_env(session, framework, releases[-1]) / "conformance"),
        "history",
        *results,
        "--html",
        str(HISTORY_REPORTS / f"{framework}.html"),
        "--markdown",
        str(HISTORY_REPORTS / f"{framework}.md"),
        external=True,
    )


REAL_BUGS = Path("conformance/real_bugs.toml")
REAL_BUG_REPORTS = REPORTS / "real-bugs"


@nox.session(venv_backend="none", name="real-bugs")
def real_bugs(session: nox.Session) -> None:
    """`nox -s real-bugs [-- ID ...]`: every real bad->fixed release pair of
    conformance/real_bugs.toml installed (cached environments) and run on the cells of its
    API (quick profile, seed 0); fails unless the bad release is flagged where the fixed one
    is not and no cell fails on the suite's own call. Writes reports/real-bugs/."""
    import tomllib

    pairs = tomllib.loads(REAL_BUGS.read_text())["pair"]
    unknown = set(session.posargs) - {p["id"] for p in pairs}
    if unknown:
        session.error(f"unknown pair {sorted(unknown)}: see {REAL_BUGS}")
    chosen = [p for p in pairs if not session.posargs or p["id"] in session.posargs]
    for pair in chosen:  # refuse before installing anything
        for side in ("bad", "fixed"):
            try:
                regression_install(pair["framework"], pair[side], pair.get("pins"))
            except ValueError as exc:
                session.error(f"{pair['id']}: {exc}")
    REAL_BUG_REPORTS.mkdir(parents=True, exist_ok=True)
    verdicts = REAL_BUG_REPORTS / "verdicts.json"
    failed = []
    for pair in chosen:
        bins = {
            side: _regression_env(session, pair["framework"], pair[side], pair.get("pins"))
            for side in ("bad", "fixed")
        }
        session.run(
            str(bins["fixed"] / "python"),
            "-m",
            "conformance.bug_pairs",
            "run",
            pair["id"],
            "--bad-bin",
            str(bins["bad"]),
            "--fixed-bin",
            str(bins["fixed"]),
            "--out",
            str(REAL_BUG_REPORTS),
            "--verdicts",
            str(verdicts),
            external=True,
            success_codes=[0, 1],
        )
        if json.loads(verdicts.read_text())[pair["id"]]["status"] != "caught":
            failed.append(pair["id"])
    if failed:
        session.error(f"not caught (or our call fails): {', '.join(failed)}; see {verdicts}")


def _cell(line: str) -> tuple[str, ...]:
    record = json.loads(line)
    return tuple(
        str(record.get(k)) for k in ("adapter", "implementation", "dtype", "device", "mode")
    )


def _baseline_subset(baseline: Path, current: Path, subset: Path) -> Path:
    """The baseline's records of the cells `current` has (a restricted run), written to `subset`."""
    cells = {_cell(line) for line in current.read_text().splitlines() if line.strip()}
    opener = lzma.open if baseline.suffix == ".xz" else open
    with opener(baseline, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    subset.write_text("".join(f"{ln}\n" for ln in lines if ln.strip() and _cell(ln) in cells))
    return subset


@nox.session(python=PYTHON, name="diff-baseline")
def diff_baseline(session: nox.Session) -> None:
    """The pinned versions (constraints/cpu.txt), quick profile, seed 0, diffed against the
    committed baselines/cpu-quick.jsonl.xz; posargs restrict the run (and the diff to its cells)."""
    if not BASELINE.exists():
        session.skip(f"{BASELINE} is absent: commit one first (see baselines/README.md)")
    _install(session, "all")
    REPORTS.mkdir(exist_ok=True)
    current = REPORTS / "results.jsonl"
    session.run(
        "conformance",
        "run",
        "--profile",
        "quick",
        "--seed",
        "0",
        *session.posargs,
        "--out",
        str(current),
        success_codes=[0, 1],  # findings are judged by the diff, not here
    )
    baseline = BASELINE
    if session.posargs:
        baseline = _baseline_subset(BASELINE, current, REPORTS / "baseline-subset.jsonl")
        session.log(f"restricted run: diffing against the baseline's cells in {baseline}")
    session.run(
        "conformance",
        "report",
        str(current),
        "--baseline",
        str(baseline),
        "-o",
        "reports/index.html",
    )
    session.run("conformance", "diff", str(baseline), str(current))
