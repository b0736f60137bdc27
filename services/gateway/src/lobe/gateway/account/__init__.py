"""What a signed-in user (or an API key's owner) manages for themselves: their own keys
(/v1/keys, over the bus to billing) and their usage (/v1/usage*, billing's reports)."""
