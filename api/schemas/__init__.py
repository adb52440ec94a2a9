"""Request and response models of the API (Create/Public split; inputs forbid unknown keys)."""
