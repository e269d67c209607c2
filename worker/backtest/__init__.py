"""``healthscore backtest``: how well a model's score, as of a past day, foretold what
customers did next (``outcomes``), and weights fitted to what they did."""
