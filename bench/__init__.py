"""`make bench`: Cards API against its database's own limit and a peer, on one PostgreSQL."""
