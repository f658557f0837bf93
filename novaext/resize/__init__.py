"""Resize and cold migration of file disks: what to move (plan), the push
from the source host (source), the destination's repointing (dest)."""
