"""The HQ: agents, runs, liveness, and storage of what the agents measure."""
