"""Start and stop local services for the orchestrated loop: a real `prefect server` on 127.0.0.1
and a runner process serving the deployments. Both stop with their owner, also on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

from xferlib.env import quiet_environ
from xferlib.services import ProcessGroup, executable, free_port, wait_healthy

_bin = executable  # flows/demo.py's name for it


class Services:
    """`with Services(home) as api_url:` a Prefect server (and later a runner) for the block.

    The children live in a `xferlib.services.ProcessGroup` (the one `xfer ui` uses): each in its
    own session, stopped as a whole group when the block ends, SIGTERM raising KeyboardInterrupt.
    """

    def __init__(self, home: Path, port: int | None = None, log_dir: Path | None = None) -> None:
        self.home, self.port = home, port or free_port()
        self.group = ProcessGroup(log_dir or home)
        self.api_url = f"http://127.0.0.1:{self.port}/api"

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        return list(self.group.procs.values())

    def env(self) -> dict[str, str]:
        return quiet_environ(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url)

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start `args` with this server's environment, output appended to `<log_dir>/<log_name>`."""
        return self.group.spawn(log_name.removesuffix(".log"), args, self.env())

    def __enter__(self) -> Services:
        self.home.mkdir(parents=True, exist_ok=True)
        self.group.__enter__()
        os.environ.update(self.env())  # in-process Prefect clients talk to this server
        proc = self.spawn(
            [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            "prefect-server.log",
        )
        try:
            wait_healthy(f"{self.api_url}/health", 120, proc)
        except BaseException:
            self.group.__exit__(None, None, None)
            raise
        return self

    def stop(self) -> None:
        self.group.stop()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.group.__exit__(et, e, tb)
