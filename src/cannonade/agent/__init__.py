"""The agent (the turret of OCT): runs cannon processes for the HQ, relays their measurements."""
