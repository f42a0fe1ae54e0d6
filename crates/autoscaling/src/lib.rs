//! tmp
#[allow(missing_docs, clippy::all, clippy::doc_lazy_continuation)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}
#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}
pub use errors::ErrorShape;
