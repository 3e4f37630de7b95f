"""Bytes <-> typed messages. No I/O here; decoders raise only ``ProtocolError``."""
