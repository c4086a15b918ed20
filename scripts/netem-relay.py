#!/usr/bin/env python3
"""Delay and loss on the multi-host test links where the kernel has no netem qdisc (scripts/netns.sh).

usage: netem-relay.py TAG DELAY_MS JITTER_MS LOSS

scripts/netns.sh replaces each veth link c <-> wI of the test hosts by two TUN devices of the same
names, TAG-cI in namespace TAG-c and TAG-wI in TAG-wI, and runs this process. It attaches to the four
devices and carries every IP packet that one end of a link sends to the other end, as the wire would,
except that it drops a share LOSS of them (each direction on its own) and holds each of the others for
DELAY_MS plus a uniform jitter in [-JITTER_MS, +JITTER_MS], so packets can overtake one another, as
with netem's jitter. The kernels' TCP on both ends sees real delay, reordering and loss: retransmits,
duplicate ACKs, slow start.

A packet for a device that is down (`scripts/netns.sh cut`) is lost, as on a cut cable. It exits when
a device goes away (`scripts/netns.sh down` deletes the namespaces) or on SIGTERM. It prints what it
has carried and dropped once a second while that changes (/tmp/netns-TAG.relay.log).
"""
import ctypes
import errno
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def attach(libc, namespace, device):
    """A non-blocking file descriptor of TUN device `device` in network namespace `namespace`."""
    ns = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(ns, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {namespace}: {os.strerror(err)}")
    finally:
        os.close(ns)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    # The open file belongs to the namespace it was opened in; TUNSETIFF finds the device there.
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    # Whatever descriptors the caller left open stay with the caller: a test harness that waits for
    # scripts/netns.sh's end by a socket the script inherited would otherwise wait for this process too.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    if len(sys.argv) != 5:
        sys.exit(__doc__.split("\n\n")[1])
    tag = sys.argv[1]
    delay, jitter, loss = float(sys.argv[2]) / 1e3, float(sys.argv[3]) / 1e3, float(sys.argv[4])
    if not (0 <= jitter <= delay and 0 <= loss < 1):
        sys.exit("netem-relay: need 0 <= JITTER_MS <= DELAY_MS and 0 <= LOSS < 1")
    libc = ctypes.CDLL(None, use_errno=True)
    peer = {}
    for i in (1, 2):
        c = attach(libc, f"{tag}-c", f"{tag}-c{i}")
        w = attach(libc, f"{tag}-w{i}", f"{tag}-w{i}")
        peer[c], peer[w] = w, c
    carried = dropped = 0

    def report(*_):
        print(f"netem-relay: {carried} packets carried, {dropped} dropped", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print(f"netem-relay: {delay * 1e3:g} ms ± {jitter * 1e3:g} ms, loss {loss:g}: ready", flush=True)
    held = []  # (due, sequence number, device, packet)
    sequence = 0
    fds = list(peer)
    reported, next_report = (0, 0), time.monotonic() + 1
    while True:
        if time.monotonic() >= next_report:  # the counts once a second while they change
            if (carried, dropped) != reported:
                reported = (carried, dropped)
                print(f"netem-relay: {carried} packets carried, {dropped} dropped", flush=True)
            next_report = time.monotonic() + 1
        timeout = min(max(0.0, held[0][0] - time.monotonic()) if held else 1.0, 1.0)
        readable, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            for _ in range(256):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno in (errno.EBADFD, errno.ENODEV, errno.EINVAL):
                        report()  # the device is gone: the namespaces were deleted
                    raise
                if random.random() < loss:
                    dropped += 1
                    continue
                sequence += 1
                heapq.heappush(held, (now + delay + random.uniform(-jitter, jitter), sequence, peer[fd], packet))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, fd, packet = heapq.heappop(held)
            try:
                os.write(fd, packet)
                carried += 1
            except OSError:
                dropped += 1  # the receiving end is down (a cut link) or its queue is full


if __name__ == "__main__":
    main()
