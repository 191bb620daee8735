"""A full disk, for real: the broker's data directory on a small tmpfs (mounted by the test, which
needs root, as CI runs). pika publishes persistent messages with confirms until the disk is full:
the broker nacks what it cannot write and stays up; once space is freed it takes messages again;
after a kill -9 every confirmed message comes back, intact and in order, and none that was nacked
or acked durably does. The broker also starts on a disk left full by the kill.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time

import pika
import pytest

from warren_process import Broker

if not os.environ.get("WARREN_BIN"):
    pytest.skip("WARREN_BIN is not set (run via interop/run.sh)", allow_module_level=True)

DISK_BYTES = 40 * 1024 * 1024
FILLER_BYTES = 8 * 1024 * 1024
BODY_BYTES = 4096
PUBLISH_DEADLINE_S = 120


@contextlib.contextmanager
def small_disk():
    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (CI does)"
    mount = tempfile.mkdtemp(prefix="warren-full-disk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", mount], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)
        os.rmdir(mount)


def body_of(n: int) -> bytes:
    head = f"m{n:08d}:".encode()
    return head + bytes((n + i) % 251 for i in range(BODY_BYTES - len(head)))


def publish_until_full(ch, first: int) -> tuple[list[int], int]:
    """Publishes with confirms until one is nacked; the numbers confirmed, and the nacked one."""
    confirmed, n = [], first
    deadline = time.monotonic() + PUBLISH_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            ch.basic_publish("", "full", body_of(n), pika.BasicProperties(delivery_mode=2))
        except pika.exceptions.NackError:
            return confirmed, n
        confirmed.append(n)
        n += 1
    raise AssertionError(f"the disk never filled: {len(confirmed)} messages confirmed")


def test_a_full_disk_nacks_publishes_loses_nothing_confirmed_and_recovers(tmp_path):
    with small_disk() as disk:
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * FILLER_BYTES)
        config = tmp_path / "warren.toml"
        # The disk alarm is off, so that the disk really fills (the alarm is tested elsewhere).
        config.write_text("[alarms]\ndisk_free_limit_bytes = 0\n")
        broker = Broker(str(tmp_path), str(config), store_dir=os.path.join(disk, "data"))
        try:
            conn = broker.connect()
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("full", durable=True)
            confirmed, nacked = publish_until_full(ch, 0)
            assert len(confirmed) > 1000, len(confirmed)
            # Still up, still answering, and still refusing while the disk is full.
            assert broker.api("GET", "/api/overview")[0] == 200
            with pytest.raises(pika.exceptions.NackError):
                ch.basic_publish("", "full", body_of(nacked), pika.BasicProperties(delivery_mode=2))

            # Space freed: publishing goes on (the broker retries its writes).
            os.remove(filler)
            resumed, deadline = None, time.monotonic() + 30
            while resumed is None:
                try:
                    ch.basic_publish("", "full", body_of(nacked + 1), pika.BasicProperties(delivery_mode=2))
                    resumed = nacked + 1
                except pika.exceptions.NackError:
                    assert time.monotonic() < deadline, "publishes were still nacked after space was freed"
                    time.sleep(0.1)
            confirmed.append(resumed)
            # Acked messages go for good once their acks are durable: the first hundred, acked
            # while there is room, then sealed by a confirmed publish (acks and messages share
            # the log and its fsyncs, in order).
            acked = []
            for _ in range(100):
                method, _, body = ch.basic_get("full")
                acked.append(int(body[1:9]))
                ch.basic_ack(method.delivery_tag)
            assert acked == confirmed[:100], "the queue holds what was confirmed, in order"
            ch.basic_publish("", "full", body_of(resumed + 1), pika.BasicProperties(delivery_mode=2))
            confirmed.append(resumed + 1)
            # Full again, and killed while full: the broker must still start.
            after, _ = publish_until_full(ch, resumed + 2)
            confirmed.extend(after)
            acked = set(acked)
            conn.close()
            broker.kill9()

            broker.start()
            conn = broker.connect()
            ch = conn.channel()
            recovered = []
            while True:
                method, _, body = ch.basic_get("full", auto_ack=True)
                if method is None:
                    break
                n = int(body[1:9])
                assert body == body_of(n), f"message {n} came back corrupt"
                recovered.append(n)
            conn.close()
            expected = [n for n in confirmed if n not in acked]
            assert recovered == expected, (
                f"{len(recovered)} recovered, {len(expected)} expected; "
                f"missing {sorted(set(expected) - set(recovered))[:5]}, extra {sorted(set(recovered) - set(expected))[:5]}")
        finally:
            broker.stop()
