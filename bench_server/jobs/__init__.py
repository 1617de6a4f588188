"""Runs (triggers), jobs, their dispatch to runners and the lease reaper."""
