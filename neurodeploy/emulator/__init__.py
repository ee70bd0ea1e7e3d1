"""neurodeploy/emulator."""
