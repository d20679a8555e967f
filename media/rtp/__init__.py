"""media/rtp."""
