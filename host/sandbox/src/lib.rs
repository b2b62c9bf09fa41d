//! The sandbox: loads operator components, keeps the plugin registry, and runs one
//! TaskInstance try per fresh wasmtime `Store` with limits and only granted capabilities.
