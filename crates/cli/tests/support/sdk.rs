//! An `aws-sdk-ecs` client pointed at a Flotilla endpoint (plain HTTP on loopback; rustls with
//! the ring provider for HTTPS, which builds with the C compiler this machine has).

/// An `aws-sdk-ecs` client for any endpoint and credentials, in us-east-1.
pub fn sdk(endpoint: &str, akid: &str, secret: &str, token: Option<&str>) -> aws_sdk_ecs::Client {
    sdk_in(endpoint, "us-east-1", akid, secret, token)
}

/// [`sdk`] in `region`.
pub fn sdk_in(
    endpoint: &str,
    region: &str,
    akid: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_sdk_ecs::Client {
    let creds = aws_credential_types::Credentials::new(
        akid,
        secret,
        token.map(str::to_string),
        None,
        "test",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}
