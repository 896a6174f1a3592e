"""The `reengage` operator CLI and the local AWS emulator (never shipped to Lambda)."""
