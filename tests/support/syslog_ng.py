"""A private syslog-ng (Debian's package, unpacked under ``.tools/syslog-ng`` by ``make receivers``) on
loopback: the strict RFC 5425/6587 receiver (``syslog()`` sources: octet counting only) over TLS and
plain TCP, writing its own RFC 5424 parse as JSON, and its internal log (where framing errors show)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.rsyslog import _wait_port, free_port
from tests.support.tls import Pki

ROOT = Path(__file__).resolve().parents[2] / ".tools" / "syslog-ng"

CONFIG = """\
@version: {version}
options {{ log-msg-size(262144); keep-hostname(yes); use-dns(no); dns-cache(no); chain-hostnames(no);
          stats-freq(0); }};
source s_tls {{ syslog(ip("127.0.0.1") port({tls_port}) transport("tls") flags(store-raw-message)
                tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
source s_tcp {{ syslog(ip("127.0.0.1") port({tcp_port}) transport("tcp") flags(store-raw-message)); }};
destination d_json {{ file("{d}/out/parsed.jsonl"
    template("$(format-json --scope rfc5424 --scope sdata --key ISODATE --key MSGID)\\n")); }};
log {{ source(s_tls); source(s_tcp); destination(d_json); }};
destination d_int {{ file("{d}/out/internal.log"); }};
log {{ source {{ internal(); }}; destination(d_int); }};
"""


@dataclasses.dataclass
class SyslogNg:
    directory: Path
    tls_port: int
    tcp_port: int
    process: subprocess.Popen[bytes]

    def parsed(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The first records syslog-ng wrote, once ``count`` are complete (or at the timeout).

        Only newline-terminated lines count: syslog-ng may be half-way through writing the last one."""
        path = self.directory / "out" / "parsed.jsonl"
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            if path.exists():
                text = path.read_text()
                lines = text[:text.rfind("\n") + 1].splitlines()
                if len(lines) >= count:
                    break
            time.sleep(0.02)
        return [json.loads(line) for line in lines]

    def internal(self) -> str:
        path = self.directory / "out" / "internal.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def installed() -> bool:
    return (ROOT / "usr" / "sbin" / "syslog-ng").exists()


def start_syslog_ng(directory: Path, pki: Pki) -> SyslogNg:
    if not installed():
        raise RuntimeError(f"syslog-ng is not unpacked in {ROOT}: run `make receivers`")
    modules = sorted(p for p in (ROOT / "usr" / "lib" / "syslog-ng").iterdir() if p.is_dir())[-1]
    (directory / "out").mkdir(parents=True, exist_ok=True)
    (directory / "persist").mkdir(exist_ok=True)
    tls_port, tcp_port = free_port(), free_port()
    config = directory / "syslog-ng.conf"
    config.write_text(CONFIG.format(version=modules.name, d=directory, key=pki.key, cert=pki.cert,
                                    tls_port=tls_port, tcp_port=tcp_port))
    env = {**os.environ, "LD_LIBRARY_PATH": str(ROOT / "usr" / "lib" / "syslog-ng")}
    process = subprocess.Popen(
        [str(ROOT / "usr" / "sbin" / "syslog-ng"), "-F", f"--module-path={modules}", "-f", str(config),
         "-R", str(directory / "persist" / "state"), "-p", str(directory / "syslog-ng.pid"),
         "-c", str(directory / "ctl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=directory)
    deadline = time.monotonic() + 10
    try:
        _wait_port(tls_port, process, deadline)
        _wait_port(tcp_port, process, deadline)
    except BaseException:
        process.kill()
        process.wait(5)
        raise
    return SyslogNg(directory, tls_port, tcp_port, process)
