//! The Aileron operator SDK. (being written)
