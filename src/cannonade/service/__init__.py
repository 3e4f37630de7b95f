"""The HQ as a service: uploaded bundles, a queue of runs, and the thread that runs it."""
