//! Generates the CloudWatch Logs request/response types from the vendored botocore model
//! (`spec/service-2.json`, the same file as `../shared/spec/logs/service-2.json`) with
//! `flotilla_botocore::generate`.

fn main() {
    let manifest =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    flotilla_botocore::generate(
        &manifest.join("spec/service-2.json"),
        &out,
        "CloudWatch Logs",
        true,
    );
}
