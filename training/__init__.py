"""Trainers: supervised fine-tuning, reward model, policy updates (PPO/GRPO, DPO)."""
