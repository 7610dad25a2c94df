//! fanout's development package: it has no code of its own. Its manifest gathers the
//! integration tests (`../tests`), the benches (`../benches`) and the examples that need tokio
//! or a Redis server, so that their dependencies are built only for them.
