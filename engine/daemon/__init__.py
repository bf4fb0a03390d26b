"""The per-user job daemon (server), its client, its journal and its wire protocol."""
