"""Figure 4: how long until a verdict when there is no IMDS: (a) a closed loopback port,
(b) a loopback server that accepts connections and never answers.

Each side runs in its own process (so a hung SDK can be stopped at the cap) and times itself
from after its imports to its verdict: this figure is about waiting on the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator

from benchmarks.harness import Context, Row, median, python
from benchmarks.sides import KVMI, SDK

GOAL_SECONDS = 2.5


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A loopback port bound but not listening: connections are refused, and no one else can
    take the port while the figure runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback server that accepts every connection and never reads or writes."""
    held: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(server.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.getsockname()[1]}"
        finally:
            server.shutdown(socket.SHUT_RDWR)
            thread.join()
            for conn in held:
                conn.close()


def _verdict_time(side: str, endpoint: str, cap: float) -> tuple[float, str] | None:
    """(seconds, verdict) of one side's run; None if it was still waiting at ``cap``."""
    env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST=endpoint)
    argv = python("-m", "benchmarks.sides", "no-imds", side, endpoint)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=cap + 10)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{side} no-imds exited {done.returncode}:\n{done.stderr[-2000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    if data["seconds"] >= cap:
        return None
    return float(data["seconds"]), str(data["verdict"])


def _case(
    context: Context,
    figure: str,
    title: str,
    endpoint_of: Callable[[], contextlib.AbstractContextManager[str]],
) -> Row:
    cap = 15.0 if context.quick else 60.0
    samples: dict[str, list[float]] = {KVMI: [], SDK: []}
    verdicts: dict[str, str] = {}
    capped = False
    with endpoint_of() as endpoint:
        for _ in range(context.runs(3, 1)):
            for side in (KVMI, SDK):
                if side == SDK and capped:
                    continue  # once at the cap, more runs only say the same thing slower
                found = _verdict_time(side, endpoint, cap)
                if found is None:
                    capped = capped or side == SDK
                    samples[side].append(cap)
                    verdicts[side] = f"none within {cap:.0f} s"
                else:
                    samples[side].append(found[0])
                    verdicts[side] = found[1]
    ours = median(samples[KVMI])
    return Row(
        figure=figure,
        title=title,
        unit="s",
        ours=ours,
        baseline=median(samples[SDK]),
        goal=f"pytest-kvmi < {GOAL_SECONDS} s",
        met=ours < GOAL_SECONDS,
        baseline_label="SDK",
        capped=capped,
        samples=samples,
        note=f"verdicts: pytest-kvmi {verdicts[KVMI]}, SDK {verdicts[SDK]}",
    )


def figure(context: Context) -> list[Row]:
    return [
        _case(context, "4a", "no IMDS: closed loopback port, time to a verdict", closed_port),
        _case(context, "4b", "no IMDS: accepts, never answers, time to a verdict", silent_server),
    ]
