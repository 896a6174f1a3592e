"""The jobs reengage does (schedule, send, record responses, upkeep), written against the ports."""
