"""media/prompts."""
