//! IAM-style authorization, pure: identity-based policy documents as IAM writes them
//! ([`Policy::parse`]), evaluated as IAM evaluates them ([`evaluate`]: an explicit deny wins,
//! then an allow, else the default deny), and IAM's message for a refusal
//! ([`denial_message`]).
//!
//! What a request's action, resource and condition keys are is the caller's business (for
//! Flotilla's APIs, `flotilla_api::authorize`); this crate knows policies only.
//!
//! Supported: `Version`, `Statement` (one or a list), `Sid`, `Effect`, `Action`/`NotAction`
//! (matched ignoring case, `*` and `?`), `Resource`/`NotResource` (ARNs with wildcards, matched
//! part by part with case), `Condition` with the string, ARN, `Bool` and `Null` operators.
//! Anything else is refused when the policy is read ([`PolicyError`]), never silently ignored.

pub mod condition;
pub mod eval;
pub mod pattern;
pub mod policy;

pub use condition::{Condition, Context, Operator};
pub use eval::{denial_message, evaluate, Decision, Request};
pub use policy::{Effect, Patterns, Policy, PolicyError, Statement};
