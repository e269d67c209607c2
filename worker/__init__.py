"""healthscore: live customer health scores from product and engagement events."""

__version__ = "0.1.0"
