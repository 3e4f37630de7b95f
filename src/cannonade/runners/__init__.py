"""Runners in other languages: their reports recorded as cannonade measurements."""
