//! TLS for the `LISTEN` connection, chosen from `DATABASE_URL` the way
//! libpq chooses it for the pool, so both connections are as safe as the
//! operator asked:
//!
//! | `sslmode` | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given (then as `verify-ca`) |
//! | `verify-ca` | always | signed by `sslrootcert` (or the system's roots) |
//! | `verify-full` | always | as `verify-ca`, and names the host |
//!
//! `sslrootcert=system` uses the system's roots and means `verify-full`
//! (a weaker `sslmode` with it is refused), as libpq 16 does. Without
//! `sslrootcert`, `PGSSLROOTCERT` or `~/.postgresql/root.crt` is the root
//! file, as for libpq; the system's roots otherwise.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it (libpq tries plain first; so do we, by
    /// taking the server's offer).
    Allow,
    /// TLS if the server offers it.
    Prefer,
    /// TLS or nothing.
    Require,
    /// TLS with a certificate signed by a trusted root.
    VerifyCa,
    /// TLS with a trusted certificate that names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// How to reach the database for `LISTEN`: the connection settings, and a
/// TLS connector unless TLS is off.
pub struct ListenTarget {
    /// Host, port, user, database… with `sslmode` mapped for tokio-postgres.
    pub config: tokio_postgres::Config,
    /// `None` with `sslmode=disable`.
    pub tls: Option<MakeRustlsConnect>,
    /// The mode asked for.
    pub mode: SslMode,
}

/// Reads `DATABASE_URL` (URL form, `postgres://…?sslmode=…`); a key=value
/// string is handed to tokio-postgres as it is, and keeps the `sslmode` it
/// names (`disable`, `prefer` or `require`: tokio-postgres reads no other
/// there, nor `sslrootcert`, and refuses the string rather than connect
/// with less).
pub fn target(database_url: &str) -> Result<ListenTarget, String> {
    let (rest, mode, root) = split_ssl_params(database_url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("DATABASE_URL cannot be read for LISTEN: {e}"))?;
    let mode = match (mode, root.as_deref()) {
        (None | Some(SslMode::VerifyFull), Some("system")) => SslMode::VerifyFull,
        (Some(_), Some("system")) => {
            return Err("DATABASE_URL: sslrootcert=system needs sslmode=verify-full (or no sslmode), as in libpq 16".to_owned())
        }
        (Some(mode), _) => mode,
        (None, _) => match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        },
    };
    let root = root.or_else(default_root);
    config.ssl_mode(match mode {
        SslMode::Disable => WireMode::Disable,
        SslMode::Allow | SslMode::Prefer => WireMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
    });
    let verify = match (mode, root.as_deref()) {
        (SslMode::Disable, _) => {
            return Ok(ListenTarget {
                config,
                tls: None,
                mode,
            })
        }
        (SslMode::Allow | SslMode::Prefer, _) | (SslMode::Require, None) => Verify::Nothing,
        (SslMode::Require | SslMode::VerifyCa, root) => Verify::Chain(roots(root)?),
        (SslMode::VerifyFull, root) => Verify::ChainAndName(roots(root)?),
    };
    Ok(ListenTarget {
        config,
        tls: Some(MakeRustlsConnect::new(client_config(verify)?)),
        mode,
    })
}

/// Takes `sslmode` and `sslrootcert` out of a URL (tokio-postgres knows
/// neither `verify-*` nor root files); other strings pass through.
fn split_ssl_params(
    database_url: &str,
) -> Result<(String, Option<SslMode>, Option<String>), String> {
    let Ok(mut url) = url::Url::parse(database_url) else {
        return Ok((database_url.to_owned(), None, None));
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                mode = Some(SslMode::parse(&value).ok_or_else(|| {
                    format!("DATABASE_URL: sslmode `{value}` is not one of disable, allow, prefer, require, verify-ca, verify-full")
                })?);
            }
            "sslrootcert" => root = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((url.into(), mode, root))
}

/// libpq's root certificate file when `sslrootcert` is not given:
/// `PGSSLROOTCERT`, else `~/.postgresql/root.crt` if it exists (with it,
/// `require` checks the chain, as `verify-ca`).
fn default_root() -> Option<String> {
    if let Some(file) = std::env::var_os("PGSSLROOTCERT") {
        return Some(file.to_string_lossy().into_owned());
    }
    let home = std::env::var_os("HOME")?;
    let file = std::path::Path::new(&home).join(".postgresql/root.crt");
    file.is_file().then(|| file.to_string_lossy().into_owned())
}

/// What the server's certificate must satisfy.
enum Verify {
    /// Encryption only (libpq's `prefer` and `require` without a root).
    Nothing,
    /// Signed by a trusted root, whatever name it carries.
    Chain(RootCertStore),
    /// Signed by a trusted root and naming the host.
    ChainAndName(RootCertStore),
}

/// The trusted roots: the PEM file `sslrootcert`, or the system's.
fn roots(file: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) if path != "system" => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("DATABASE_URL: sslrootcert `{path}` cannot be read: {e}"))?
            {
                let cert = cert
                    .map_err(|e| format!("DATABASE_URL: sslrootcert `{path}` is not PEM: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("DATABASE_URL: sslrootcert `{path}`: {e}"))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    if store.is_empty() {
        return Err("DATABASE_URL: no trusted root certificate found for sslmode".to_owned());
    }
    Ok(store)
}

fn client_config(verify: Verify) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let webpki = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| e.to_string())
    };
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Lenient {
            chain: None,
            provider: provider.clone(),
        }),
        Verify::Chain(roots) => Arc::new(Lenient {
            chain: Some(webpki(roots)?),
            provider: provider.clone(),
        }),
        Verify::ChainAndName(roots) => webpki(roots)?,
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// libpq's checks short of `verify-full`: with `chain`, a trusted chain
/// whatever name the certificate carries (`verify-ca`); without, any
/// certificate (`prefer`, `require`: encrypted, not authenticated). The
/// handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, mode, root) = split_ssl_params(
            "postgres://u:p@db.example:6432/app?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example:6432/app?application_name=x"
        );
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let (rest, mode, _) = split_ssl_params("postgres://u@/app?host=%2Frun%2Fpg").unwrap();
        assert_eq!(rest, "postgres://u@/app?host=%2Frun%2Fpg");
        assert_eq!(mode, None);
        assert!(split_ssl_params("postgres://u@h/app?sslmode=maybe")
            .unwrap_err()
            .contains("sslmode `maybe`"));
    }

    #[test]
    fn each_mode_maps_to_tls_on_the_wire() {
        let t = target("postgres://u@h/app?sslmode=disable").unwrap();
        assert!(t.tls.is_none());
        assert_eq!(t.config.get_ssl_mode(), WireMode::Disable);
        let t = target("postgres://u@h/app").unwrap();
        assert!(t.tls.is_some(), "prefer by default, as libpq");
        assert_eq!(t.config.get_ssl_mode(), WireMode::Prefer);
        let t = target("postgres://u@h/app?sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), WireMode::Require);
        assert_eq!(t.mode, SslMode::Require);
        let missing = target("postgres://u@h/app?sslmode=verify-ca&sslrootcert=/nonexistent.pem");
        assert!(missing.err().unwrap().contains("cannot be read"));
    }

    #[test]
    fn a_key_value_string_keeps_its_sslmode() {
        let t = target("host=db user=u dbname=app sslmode=require").unwrap();
        assert_eq!(t.mode, SslMode::Require);
        assert_eq!(t.config.get_ssl_mode(), WireMode::Require);
        let t = target("host=db user=u dbname=app sslmode=disable").unwrap();
        assert_eq!(t.mode, SslMode::Disable);
        assert!(t.tls.is_none());
        let t = target("host=db user=u dbname=app").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
    }

    #[test]
    fn sslrootcert_system_means_verify_full_as_in_libpq_16() {
        let t = target("postgres://u@h/app?sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.config.get_ssl_mode(), WireMode::Require);
        for weaker in ["disable", "prefer", "require", "verify-ca"] {
            let e = target(&format!(
                "postgres://u@h/app?sslrootcert=system&sslmode={weaker}"
            ))
            .err()
            .unwrap();
            assert!(e.contains("verify-full"), "{weaker}: {e}");
        }
    }
}
