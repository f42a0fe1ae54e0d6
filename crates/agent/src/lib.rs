//! The container agent (being built).
