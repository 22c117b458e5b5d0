"""A DNS server on a loopback address that knows one name, for the container test.

The image's binary is linked statically against glibc; its getaddrinfo must still find
names through DNS (/etc/resolv.conf), not only /etc/hosts. Pointing the container's
resolv.conf here keeps that query on loopback, and the server records what it was
asked, so the test also sees which names did not reach DNS at all.
"""

import socket
import struct
import threading

A, AAAA = 1, 28


class LoopbackDns:
    """Answers A queries for `name` with `address`; NODATA for its other types and
    NXDOMAIN for any other name. `asked` lists (name, type) in arrival order."""

    def __init__(self, host, name, address):
        self.name = name.lower().rstrip(".")
        self.address = socket.inet_aton(address)
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 53))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            answer = self._answer(query)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def _answer(self, query):
        if len(query) < 12:
            return None
        (ident, _flags, qdcount) = struct.unpack("!HHH", query[:6])
        if qdcount != 1:
            return None
        labels, at = [], 12
        while at < len(query) and query[at] != 0:
            size = query[at]
            labels.append(query[at + 1 : at + 1 + size].decode("ascii", "replace"))
            at += 1 + size
        question_end = at + 5
        if question_end > len(query):
            return None
        qtype, _qclass = struct.unpack("!HH", query[at + 1 : question_end])
        name = ".".join(labels).lower()
        self.asked.append((name, qtype))
        question = query[12:question_end]
        known = name == self.name
        # Response, recursion desired copied, recursion available; rcode 3 = NXDOMAIN.
        flags = 0x8180 | (0 if known else 3)
        answers = b""
        if known and qtype == A:
            # Name by pointer to the question (offset 12), A, IN, TTL 5 s, 4 bytes.
            answers = struct.pack("!HHHIH", 0xC00C, A, 1, 5, 4) + self.address
        count = 1 if answers else 0
        header = struct.pack("!HHHHHH", ident, flags, 1, count, 0, 0)
        return header + question + answers
