"""The adversarial suite's bookkeeping: outcomes counted, leftover processes hunted, slow cases.

Every case that passes records how it ended through the `outcome` fixture: `refused` (bad
input became one clear error, of the documented type) or `survived` (the system kept working,
or ended as documented, e.g. servers gone after their client was killed). After every case,
processes started for it are hunted down: every bridge server, and whatever its environments
start, carries `CHECKED_RL_BRIDGE_CLIENT=<client pid>` in its environment, so `/proc` shows
what outlived a case (the pids of clients a case started and killed are registered with
`outcome.client`). A survivor is counted, killed and fails the case.

The terminal summary prints the cases tried, refused cleanly, survived, passed unclassified (a
case in this directory that records no outcome), failed, and the leftover processes; with
`CHECKED_RL_ADVERSARIAL_REPORT=path` the counts are also written there as JSON (the numbers in
docs/guides/reliability.md come from that file).

Cases marked `slow` run only when this directory runs alone (`python -m pytest tests/adversarial`);
in the whole suite (`make test`) they are skipped with that reason.
"""

import json
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from checked_rl.runtime.bridge.lifeline import CLIENT_VARIABLE
from tests.faulty_envs import alive

ORPHAN_WAIT = 10.0
"""Seconds a case's processes may take to end after it (the watchdog needs a fraction)."""

_HERE = Path(__file__).parent
_TALLY = "CHECKED_RL_ADVERSARIAL_TALLY"


class Outcome:
    """How one case ended, and the clients whose processes must not survive it."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.clients: set[int] = {os.getpid()}

    def refused(self) -> None:
        """The bad input was refused with one clear error."""
        self.kind = "refused"

    def survived(self) -> None:
        """The system kept working, or ended as documented."""
        self.kind = "survived"

    def client(self, pid: int) -> None:
        """Also hunt the processes of client `pid` (a client process the case started)."""
        self.clients.add(pid)


def tagged_processes(clients: set[int]) -> list[int]:
    """Live processes whose environment names one of `clients` as their bridge client."""
    wanted = {f"{CLIENT_VARIABLE}={pid}".encode() for pid in clients}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in clients:
            continue
        try:
            variables = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if variables & wanted and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


_TALLY_DIRS: dict[int, Path] = {}
"""The tally directory of this process's pytest run (a controller's, or the one it passed)."""

_PASSED = pytest.StashKey[bool]()


def _tally_dir(config: pytest.Config) -> Path:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _TALLY in workerinput:
        return Path(workerinput[_TALLY])
    if id(config) not in _TALLY_DIRS:
        _TALLY_DIRS[id(config)] = Path(tempfile.mkdtemp(prefix="adversarial-tally-"))
    return _TALLY_DIRS[id(config)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: an adversarial case run only with tests/adversarial")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput[_TALLY] = str(_tally_dir(node.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    alone = all(_HERE in Path(item.fspath).parents for item in items)
    if alone:
        return
    skip = pytest.mark.skip(
        reason="slow adversarial case: run `python -m pytest tests/adversarial`"
    )
    for item in items:
        if "slow" in item.keywords and _HERE in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture
def outcome():
    """Record the case's outcome (see the module docstring)."""
    return Outcome()


@pytest.fixture(autouse=True)
def no_leftover(request: pytest.FixtureRequest, outcome: Outcome):
    """After the case: hunt its processes, record its outcome and any leftover."""
    yield
    deadline = time.monotonic() + ORPHAN_WAIT
    survivors = tagged_processes(outcome.clients)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = tagged_processes(outcome.clients)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    passed = request.node.stash.get(_PASSED, False)
    kind = outcome.kind if passed else "failed"
    record = {"case": request.node.nodeid, "outcome": kind, "leftover": len(survivors)}
    tally = _tally_dir(request.config) / f"{os.getpid()}.jsonl"
    with tally.open("a") as file:
        file.write(json.dumps(record) + "\n")
    assert not survivors, f"processes {survivors} outlived the case"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is not None:
        return
    records = [
        json.loads(line)
        for path in sorted(_tally_dir(config).glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    if not records:
        return
    counts = {
        "cases_tried": len(records),
        "refused_cleanly": sum(r["outcome"] == "refused" for r in records),
        "survived": sum(r["outcome"] == "survived" for r in records),
        "passed_unclassified": sum(r["outcome"] is None for r in records),
        "failed": sum(r["outcome"] == "failed" for r in records),
        "leftover_processes": sum(r["leftover"] for r in records),
    }
    terminalreporter.write_line(
        "adversarial: " + ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items())
    )
    report = os.environ.get("CHECKED_RL_ADVERSARIAL_REPORT")
    if report:
        Path(report).write_text(json.dumps(counts, indent=2) + "\n")
