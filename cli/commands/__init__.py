"""Sub-commands of the CLI, one module per area (store, sandbox, scaleway, explore, app)."""
