"""ZeroMQ sockets and CURVE security; the only package that imports zmq."""
