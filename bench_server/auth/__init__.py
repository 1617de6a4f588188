"""Auth: bearer tokens with scopes. Reads are public; writes need a token with the right scope."""
