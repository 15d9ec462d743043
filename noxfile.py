"""Sessions: the suite's own tests, lint, and the long reference sweep.

Every session installs from constraints/cpu.txt, the exact versions CI uses
(torch 2.13.0 is the CPU build from pip's find-links).
"""

from __future__ import annotations

import nox

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
