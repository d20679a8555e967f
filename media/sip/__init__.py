"""media/sip."""
