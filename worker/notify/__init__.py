"""``healthscore notify slack``: tier-change alerts to people, through a Slack webhook.

The flow, one module each: ``config`` (settings and flags, filters), ``format`` and
``digest`` (pure: alert dicts to Block Kit payloads), ``slack`` (one post, with the
retry policy), ``ledger`` (alert ids Slack acknowledged, in Redis), ``offsets`` (what
may be committed), ``delivery`` (consume -> post -> commit).
"""
