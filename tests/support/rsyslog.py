"""A private rsyslogd (Debian's package) on loopback: imtcp over TLS (gtls) and plain TCP, writing what
it receives to files the tests read. ``make receivers`` installs ``rsyslog`` and ``rsyslog-gnutls``.

Two outputs: ``raw.log`` (``%rawmsg%``, one line per message, so frame boundaries show) and
``parsed.jsonl`` (rsyslog's own RFC 5424 parse: PRI, host, app, msgid, structured data, msg).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.tls import Pki

CONFIG = """\
global(workDirectory="{d}/work" maxMessageSize="{max_size}"
       DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" maxSessions="50")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="rs"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="rs"
      streamDriver.name="ptcp" streamDriver.mode="0")
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="parsed" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="appname" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="rs") {{
  action(type="omfile" file="{d}/out/raw.log" template="raw")
  action(type="omfile" file="{d}/out/parsed.jsonl" template="parsed")
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rsyslogd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"rsyslogd did not listen on {port}")


@dataclasses.dataclass
class Rsyslog:
    directory: Path
    tls_port: int
    tcp_port: int
    process: subprocess.Popen[bytes]

    @property
    def raw_log(self) -> Path:
        return self.directory / "out" / "raw.log"

    @property
    def parsed_log(self) -> Path:
        return self.directory / "out" / "parsed.jsonl"

    def parsed(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were written; return rsyslog's parse of each (in order).

        Only newline-terminated lines count: rsyslog may be half-way through writing the last one."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            if self.parsed_log.exists():
                text = self.parsed_log.read_text()
                lines = text[:text.rfind("\n") + 1].splitlines()
                if len(lines) >= count:
                    break
            time.sleep(0.02)
        return [json.loads(line) for line in lines]

    def raw(self) -> list[str]:
        return self.raw_log.read_text().splitlines() if self.raw_log.exists() else []

    def clear(self) -> None:
        """Forget what was written so far (rsyslog reopens the files as needed)."""
        for path in (self.raw_log, self.parsed_log):
            if path.exists():
                path.write_text("")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)


def start_rsyslog(directory: Path, pki: Pki, *, max_size: str = "256k") -> Rsyslog:
    binary = rsyslogd()
    if binary is None:
        raise RuntimeError("rsyslogd is not installed: run `make receivers`")
    (directory / "work").mkdir(parents=True, exist_ok=True)
    (directory / "out").mkdir(exist_ok=True)
    tls_port, tcp_port = free_port(), free_port()
    config = directory / "rsyslog.conf"
    config.write_text(CONFIG.format(d=directory, max_size=max_size, ca=pki.ca, cert=pki.cert, key=pki.key,
                                    tls_port=tls_port, tcp_port=tcp_port))
    check = subprocess.run([binary, "-N1", "-f", str(config)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"rsyslog refused its config: {check.stderr or check.stdout}")
    process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(directory / "rsyslogd.pid")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    try:
        _wait_port(tls_port, process, deadline)
        _wait_port(tcp_port, process, deadline)
    except BaseException:
        process.kill()
        process.wait(5)
        raise
    return Rsyslog(directory, tls_port, tcp_port, process)
