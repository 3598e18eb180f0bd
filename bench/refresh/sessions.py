#!/usr/bin/env python3
"""What one flag change costs the sessions watching a mailbox (issue:
views refresh by MODSEQ), for bench/refresh/run.sh.

  sessions.py --server 127.0.0.1:21146 --user u@bench.test --token T
              --mailbox box@bench.test --sessions 100 --changes 40 --pid PID

Opens SESSIONS sessions that SELECT the mailbox and IDLE, and one writer
that toggles \\Flagged on message 1, CHANGES times. After each change it
waits until every idler has been sent the FETCH, and records how long that
took. Prints the median and worst of those waits, and the server's CPU time
(user + system, from /proc/PID/stat) per change.
"""

import argparse
import asyncio
import os
import statistics
import time


class Session:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.tag = reader, writer, 0

    @classmethod
    async def login(cls, host, port, user, token):
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        session = cls(reader, writer)
        await reader.readline()
        await session.run(f"LOGIN {user} {token}")
        return session

    async def run(self, command):
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.writer.write(tag + b" " + command.encode() + b"\r\n")
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line.startswith(tag + b" "):
                if line.split(b" ")[1] != b"OK":
                    raise RuntimeError(line.decode().strip())
                return

    async def idle(self):
        self.writer.write(b"i IDLE\r\n")
        await self.writer.drain()
        while not (await self.reader.readline()).startswith(b"+"):
            pass

    async def next_fetch(self):
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if b" FETCH (" in line:
                return


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="127.0.0.1:21146")
    parser.add_argument("--user", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--mailbox", required=True)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--pid", type=int, required=True)
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    idlers = []
    for _ in range(args.sessions):
        session = await Session.login(host, int(port), args.user, args.token)
        await session.run(f"SELECT {args.mailbox}")
        await session.idle()
        idlers.append(session)
    writer = await Session.login(host, int(port), args.user, args.token)
    await writer.run(f"SELECT {args.mailbox}")
    await asyncio.sleep(1)
    waits = []
    cpu_before = cpu_seconds(args.pid)
    for change in range(args.changes):
        sign = "+" if change % 2 == 0 else "-"
        begun = time.monotonic()
        await writer.run(f"STORE 1 {sign}FLAGS.SILENT (\\Flagged)")
        await asyncio.gather(*(idler.next_fetch() for idler in idlers))
        waits.append(time.monotonic() - begun)
    cpu = cpu_seconds(args.pid) - cpu_before
    waits.sort()
    print(
        f"sessions {args.sessions} changes {args.changes} "
        f"all-told median {statistics.median(waits) * 1000:.1f} ms "
        f"worst {waits[-1] * 1000:.1f} ms "
        f"server CPU per change {cpu / args.changes * 1000:.1f} ms"
    )


asyncio.run(main())
