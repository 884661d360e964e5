"""One module per command, each reading through `store`, computing through `core` and writing
through `store`. Commands never import each other: what several share lives in `steps/`."""
