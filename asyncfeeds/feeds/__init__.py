"""Feed logic written once against the storage protocols, plus the per-backend classes."""
