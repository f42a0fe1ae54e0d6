//! The Flotilla web console, pure: the HTML of every console page, rendered on the server from
//! the ECS model's types as the API answered them, with no script but a small inline one that
//! refreshes a page's live parts in place ([`layout`]).
//!
//! - [`pages`]: one module per page (clusters, a cluster, a service, a task, task definitions).
//! - [`layout`]: the page around them, the sign-in page, the stylesheet (readable on a phone)
//!   and the live-update script.
//! - [`session`]: the signed session cookie and the CSRF tokens of forms.
//! - [`forms`]: a submitted form read into the ECS request it stands for.
//! - [`capacity`], [`chart`], [`format`], [`html`]: what the pages are made of.
//!
//! What it is not: the HTTP side. `flotilla_api::console` serves these pages, verifies the
//! session, and makes every read and action an ECS (or Logs) request through the API's own
//! path, signed with the signed-in key, so the console can do exactly what the API lets that
//! key do and nothing else.
//!
//! **Architecture Invariant:** every value that did not come from this crate is escaped
//! ([`html::esc`]) before it is written into a page; no I/O, no clock, no randomness of its own
//! (the caller passes the time and the random bytes in).

#![warn(missing_docs)]

pub mod capacity;
pub mod chart;
pub mod format;
pub mod forms;
pub mod html;
pub mod layout;
pub mod pages;
pub mod session;

pub use layout::{Notice, Viewer};
