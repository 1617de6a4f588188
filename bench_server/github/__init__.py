"""GitHub: the webhook (push, pull_request, ping) and commit statuses posted back."""
