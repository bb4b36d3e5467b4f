#!/usr/bin/env python3
"""Exactly-once digest under kill -9: how often a killed `digest send`
duplicates or skips a recipient.

usage: benches/digest_kill.py GAZETTE_BINARY [TRIALS=10] [DELAY_MS=30] [RECIPIENTS=50]

An SMTP server on loopback (asyncio, in this process) records each message
the moment it has the whole DATA, then waits DELAY_MS before every reply
(greeting, EHLO, MAIL, RCPT, DATA, the 250 after the data, QUIT); a
message counts as received when its 250 goes out. For each
trial a copy of a polled demo store gets `digest send` for RECIPIENTS
addresses; the process is killed with SIGKILL at a uniformly random moment
of a calibrated uninterrupted run's length, then `digest send` runs again
until it exits 0. A recipient with two messages is a duplicate, one with
none is skipped. Duplicates are also counted as a server would that keeps a
message as soon as it has the whole data, before its reply delay. Trials where the first run finished before the kill are
counted apart.
"""

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """A minimal SMTP server: one log line per message received."""

    def __init__(self, delay):
        self.delay = delay
        self.received = []  # (recipient, message-id): 250 sent
        self.dots = []  # (recipient, message-id): the whole data received
        self.lock = threading.Lock()

    async def reply(self, writer, line):
        if self.delay:
            await asyncio.sleep(self.delay)
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    async def handle(self, reader, writer):
        try:
            await self.reply(writer, "220 bench ESMTP")
            rcpts = []
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode(errors="replace").strip()
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await self.reply(writer, "250-bench\r\n250 8BITMIME")
                elif verb == "MAIL":
                    rcpts = []
                    await self.reply(writer, "250 ok")
                elif verb == "RCPT":
                    rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                    await self.reply(writer, "250 ok")
                elif verb == "DATA":
                    await self.reply(writer, "354 go on")
                    mid = ""
                    while True:
                        d = await reader.readline()
                        if not d or d in (b".\r\n", b".\n"):
                            break
                        if d.lower().startswith(b"message-id:"):
                            mid = d.split(b":", 1)[1].strip().decode()
                    if not d:
                        break
                    with self.lock:
                        for r in rcpts:
                            self.dots.append((r, mid))
                    # Accepted when the 250 goes out, as a real server
                    # queues the message before it replies.
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    with self.lock:
                        for r in rcpts:
                            self.received.append((r, mid))
                    writer.write(b"250 queued\r\n")
                    await writer.drain()
                elif verb == "RSET" or verb == "NOOP":
                    await self.reply(writer, "250 ok")
                elif verb == "QUIT":
                    await self.reply(writer, "221 bye")
                    break
                else:
                    await self.reply(writer, "502 no")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def start(self):
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main():
            srv = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = srv.sockets[0].getsockname()[1]
            ready.set()
            async with srv:
                await srv.serve_forever()

        threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True).start()
        ready.wait()

    def take(self):
        with self.lock:
            r, self.received = self.received, []
            d, self.dots = self.dots, []
        return r, d


def main():
    gazette = os.path.abspath(sys.argv[1])
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    delay = (int(sys.argv[3]) if len(sys.argv) > 3 else 30) / 1000
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    server = Server(delay)
    server.start()
    work = tempfile.mkdtemp(prefix="digest-kill-")
    shutil.copytree(os.path.join(ROOT, "examples", "feeds"), os.path.join(work, "feeds"))
    demo = open(os.path.join(ROOT, "examples", "demo.toml")).read()
    head, feeds = demo.split("# --- Sources", 1)
    to = ", ".join(f'"r{i:03}@example.org"' for i in range(n))
    config = f'''title = "Kill bench"
site_url = "http://127.0.0.1:8080/"
database = "sqlite://store.db"
[digest]
schedule = "{{schedule}}"
from = "Gazette <digest@example.org>"
to = [{to}]
transport = "smtp"
send_when_empty = true
[digest.smtp]
host = "127.0.0.1"
port = {server.port}
security = "none"
retries = 0
timeout = "5s"
# --- Sources{feeds}'''
    open(os.path.join(work, "feeds.toml"), "w").write(config)
    base = os.path.join(work, "base")
    os.mkdir(base)

    # A daily schedule whose last tick falls after the poll and stays the
    # latest one for the whole bench: every trial sends the same period.
    tick = time.gmtime(time.time() + 120)
    schedule = f"{tick.tm_min} {tick.tm_hour} * * *"
    config = config.replace("{schedule}", schedule)
    open(os.path.join(work, "feeds.toml"), "w").write(config)

    def run(d, *args, **kw):
        return subprocess.Popen([gazette, "--config", os.path.join(d, "feeds.toml"), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)

    def trial_dir(name):
        d = os.path.join(work, name)
        shutil.copytree(base, d)
        shutil.copy(os.path.join(work, "feeds.toml"), d)
        os.symlink(os.path.join(work, "feeds"), os.path.join(d, "feeds"))
        return d

    shutil.copy(os.path.join(work, "feeds.toml"), base)
    os.symlink(os.path.join(work, "feeds"), os.path.join(base, "feeds"))
    assert run(base, "poll").wait() == 0
    os.unlink(os.path.join(base, "feeds.toml"))
    os.unlink(os.path.join(base, "feeds"))
    wait = time.mktime(tick) - time.mktime(time.gmtime()) + 1
    print(f"waiting {wait:.0f} s for the digest's tick ({schedule} UTC)")
    time.sleep(max(0, wait))

    # Calibration: one uninterrupted send.
    d = trial_dir("calibrate")
    t0 = time.monotonic()
    assert run(d, "digest", "send").wait() == 0
    span = time.monotonic() - t0
    got, _ = server.take()
    assert len(got) == n, f"calibration sent {len(got)} of {n}"
    print(f"uninterrupted send to {n} recipients: {span:.3f} s ({delay * 1000:.0f} ms replies)")

    killed = dup_trials = skip_trials = finished_first = dot_dup_trials = 0
    dups_total = 0
    rng = random.Random(int(os.environ.get("SEED", "1")))
    for t in range(trials):
        d = trial_dir(f"t{t}")
        p = run(d, "digest", "send")
        time.sleep(rng.uniform(0, span))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed += 1
        else:
            finished_first += 1
        for _ in range(10):
            if run(d, "digest", "send").wait() == 0:
                break
        got, dots = server.take()
        per = {}
        for r, _ in got:
            per[r] = per.get(r, 0) + 1
        dups = sum(1 for c in per.values() if c > 1)
        per_dot = {}
        for r, _ in dots:
            per_dot[r] = per_dot.get(r, 0) + 1
        dot_dups = sum(1 for c in per_dot.values() if c > 1)
        dot_dup_trials += dot_dups > 0
        skipped = n - len(per)
        dups_total += dups
        dup_trials += dups > 0
        skip_trials += skipped > 0
        print(f"trial {t}: {'killed' if p.returncode == -9 else 'finished'}, "
              f"{len(got)} messages, {dups} duplicated, {skipped} skipped; "
              f"counted at the end of the data: {dot_dups} duplicated")
        shutil.rmtree(d)
    print(f"{killed} killed trials ({finished_first} finished before the kill): "
          f"{dup_trials} with a duplicate ({dups_total} duplicates), {skip_trials} with a skip; "
          f"counted when the server has the whole data (before its reply delay): "
          f"{dot_dup_trials} with a duplicate")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
