"""neurodeploy/passes."""
