"""zgserve: the user broker (SDK) for the 0G Serving Network."""
