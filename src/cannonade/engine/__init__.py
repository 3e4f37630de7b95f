"""The load engine: virtual users, executors and the HTTP hot path of one process."""
