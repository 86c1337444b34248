"""One controller per kind the syncer keeps in step; see each module's docstring."""
