"""Every SQL statement of the service, one module per aggregate.

Functions take a connection and keyword arguments, filter by `tenant_id` explicitly (row-level
security is the second fence, not the only one), and never open or commit a transaction: the
request dependency owns it.
"""
