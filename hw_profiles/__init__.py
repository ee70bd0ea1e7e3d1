"""hw_profiles."""
