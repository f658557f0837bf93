"""The compute driver and the modules it delegates to."""
