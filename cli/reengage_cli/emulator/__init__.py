"""The local AWS emulator: moto's server on loopback (server.py), provisioned from template.yaml
(provision.py, template.py), with the captured emails (outbox.py) and the leads stream (streams.py)."""
