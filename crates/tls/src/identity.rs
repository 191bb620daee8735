//! The user a verified client certificate names, for the `EXTERNAL` SASL mechanism: its
//! subject's common name, or its first DNS name, email address or URI.

use crate::CertLogin;
use tokio_rustls::rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The user named by the leaf of `certs` (as rustls gives a verified peer's chain), if any.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>, from: CertLogin) -> Option<String> {
    let leaf = certs?.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    match from {
        CertLogin::CommonName => {
            cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned)
        }
        CertLogin::SubjectAlternativeName => {
            let san = cert.subject_alternative_name().ok()??;
            san.value.general_names.iter().find_map(|name| match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some((*s).to_owned()),
                _ => None,
            })
        }
    }
}
