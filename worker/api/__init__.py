"""The account API (``healthscore api``): scores, tiers and the model, read from Redis.

Stateless: every request reads Redis, nothing is held between requests, so any
number of API processes run beside the workers and scale apart from them.
"""
