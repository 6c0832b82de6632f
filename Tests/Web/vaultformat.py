"""Python references for the vault's lengths (PROTOCOL.md 9.1), shared by the browser and tus tests."""


def padme(n: int) -> int:
    """Padmé: n for n < 2; otherwise n rounded up to keep only the top floor(log2 E) + 1 bits."""
    if n < 2:
        return n
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def ciphertext_length(size: int) -> int:
    """The stored length of a file of `size` bytes: header, padded content, a tag per 64 KiB chunk."""
    p = padme(size)
    return 17 + p + 16 * max(1, -(-p // 65536))
