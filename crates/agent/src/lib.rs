//! The container agent (being built).

pub mod config;
pub mod docker;
pub mod engine;
pub mod lifecycle;
pub mod registry;
pub mod runtime;
pub mod spec;
pub mod state;
