//! Certificates for the TLS tests, made here with rcgen: CAs, leaves signed by them, and a
//! rustls server configuration that demands a client certificate.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// (certificate PEM, key PEM) for `name`, signed by `ca`.
pub fn leaf(ca: &Ca, name: &str, sans: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A server configuration for a partner simulator: its certificate names `localhost`, and it
/// demands a client certificate that chains to `clients`.
pub fn partner_server(
    cert: &(String, String),
    clients: &Ca,
) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(clients.pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap(),
        )
        .unwrap();
    std::sync::Arc::new(config)
}

/// The machine's RabbitMQ (`AMQP_URL`) behind a TLS front whose certificate chains to
/// `broker_ca` and that demands a client certificate from `client_ca`; the front and its
/// `amqps://` URL (same credentials and vhost, host `localhost`).
pub async fn broker_behind_tls(
    broker_ca: &Ca,
    client_ca: &Ca,
) -> (contract_tests::TlsProxy, String) {
    let direct = reqwest::Url::parse(&super::amqp_url()).unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5672)
    );
    let proxy = contract_tests::TlsProxy::start(
        upstream,
        partner_server(&leaf(broker_ca, "broker", &["localhost"]), client_ca),
    )
    .await
    .unwrap();
    let mut via = direct;
    via.set_scheme("amqps").unwrap();
    via.set_host(Some("localhost")).unwrap();
    via.set_port(Some(proxy.addr.port())).unwrap();
    (proxy, via.to_string())
}
