"""Lobe metrics service: fleet-wide business metrics from the USAGE and EVENTS streams."""
