"""The application layer: typed queries and commands that every face (CLI, API, web UI) calls,
so that they agree by construction. Faces parse input, call one function here, render."""
