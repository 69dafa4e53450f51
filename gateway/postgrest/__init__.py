"""Everything the gateway says to PostgREST and its database: reload notifications and more."""
