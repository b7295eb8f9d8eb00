"""The game-day console: a facilitator runs a drill live, step by step (docs/gameday.md)."""
