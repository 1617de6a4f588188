"""Runner registration, heartbeats, listing and the offline sweep."""
