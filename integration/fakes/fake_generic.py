#!/usr/bin/env python3
"""A tiny interactive terminal tool, installed as the executable `generic` for the PTY adapter.

Why: the generic adapter runs any CLI in a real PTY; this one emits ANSI colour / cursor / title
sequences (which the relay must strip) and shows exactly which bytes the relay typed.

Commands (one per line):
  exit N      exit with code N
  raw         switch the terminal to raw mode; the next input is reported as
              `raw-bytes: <repr>` (proves the relay ends input with a CR, not LF)
  stubborn    ignore SIGTERM and SIGHUP from now on (proves the relay SIGKILLs after its grace period)
  anything    echoed as `got: <line>` in colour
It writes its PID to ./generic.pid (relative to its cwd) so a test can check it was reaped.
"""
from __future__ import annotations

import os
import signal
import sys
import termios
import tty

RED, GREEN, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m"


def out(s: str) -> None:
    try:
        sys.stdout.write(s)
        sys.stdout.flush()
    except OSError:
        linger_if_stubborn()
        raise


STUBBORN = False


def linger_if_stubborn() -> None:
    """A stubborn tool survives losing its terminal; only SIGKILL ends it (bounded to 120 s)."""
    if STUBBORN:
        import time
        time.sleep(120)


def main() -> int:
    global STUBBORN
    with open("generic.pid", "w") as f:
        f.write(str(os.getpid()))
    # A window title (OSC), colours (SGR) and a cursor-forward (CSI n C): all must disappear.
    out(f"\x1b]0;generic tool\x07{BOLD}generic ready{RESET} args={' '.join(sys.argv[1:]) or '-'}\r\n")
    out(f"{GREEN}generic>{RESET}\x1b[1C")
    fd = sys.stdin.fileno()
    while True:
        try:
            line = sys.stdin.readline()
        except OSError:
            line = ""
        if not line:
            linger_if_stubborn()
            return 0
        line = line.rstrip("\r\n")
        if line.startswith("exit"):
            parts = line.split()
            code = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else 0
            out(f"bye {code}\r\n")
            return code
        if line == "raw":
            old = termios.tcgetattr(fd)
            tty.setraw(fd)
            try:
                out("raw-ready\r\n")
                data = b""
                while not data.endswith((b"\r", b"\n")):
                    chunk = os.read(fd, 1)
                    if not chunk:
                        break
                    data += chunk
                # Read whatever else arrives within a short moment (a stray LF would show up here).
                import select
                while select.select([fd], [], [], 0.2)[0]:
                    chunk = os.read(fd, 64)
                    if not chunk:
                        break
                    data += chunk
            finally:
                termios.tcsetattr(fd, termios.TCSADRAIN, old)
            out(f"raw-bytes: {data!r}\r\n")
            continue
        if line == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            STUBBORN = True
            out("stubborn now\r\n")
            continue
        out(f"{RED}got:{RESET} {BOLD}{line}{RESET}\r\n{GREEN}generic>{RESET} ")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BrokenPipeError, OSError):
        sys.exit(0)
