"""What the controller's system tests share to speak to it at the byte level: RFC 6455 frames as
a client sends them (masked) and as the server sends them (not), over any socket, plain or TLS,
and reading a log file whatever bytes it holds."""
import os
import struct


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def ws_frame(first_byte, payload, masked=True):
    """One frame: FIN, RSV and opcode in `first_byte`, masked as a client must (or, to test the
    refusal, not)."""
    mask = os.urandom(4) if masked else b""
    bit = 0x80 if masked else 0
    n = len(payload)
    header = bytes([first_byte]) + (bytes([bit | n]) if n < 126 else
                                    bytes([bit | 126]) + struct.pack("!H", n) if n < 65536 else
                                    bytes([bit | 127]) + struct.pack("!Q", n))
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
    return header + mask + body


def ws_send(s, text):
    """One masked text frame."""
    s.sendall(ws_frame(0x81, text.encode()))


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def ws_recv(s):
    """One frame from the server (unmasked): (opcode, payload)."""
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return b0 & 0x0F, recv_exact(s, n)
