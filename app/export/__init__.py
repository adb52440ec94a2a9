"""Verified counts out to billing systems: plan (pure), target formats, delivery."""
