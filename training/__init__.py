"""Training and evaluation library (SFT, reward model, GRPO, rewards, metrics). No Dagster here."""
