//! Placeholder until the placement benchmark lands.
fn main() {}
