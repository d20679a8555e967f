"""media/dtmf."""
