"""fields toolkit."""
