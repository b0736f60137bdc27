"""The library every Lobe service uses: event catalog, settings fragments, NATS, logs, telemetry.

Nothing service-specific lives here.
"""
