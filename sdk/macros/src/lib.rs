//! Procedural macros of the SDK. (being written)
