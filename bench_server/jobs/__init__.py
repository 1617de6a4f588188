"""Jobs: their lifecycle as runners drive it (claim, lease, start, log, finish, release), cancel and
the lease reaper."""
