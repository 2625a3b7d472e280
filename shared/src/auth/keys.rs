//! The Ed25519 key pair. `JWT_PRIVATE_KEY` / `JWT_PUBLIC_KEY` hold a PEM or a path to one; in
//! development, when neither is set, a pair is generated once into the data directory (with a
//! warning) and every local service finds it there.

use std::path::{Path, PathBuf};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair as _},
};
use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError, Source};

/// SubjectPublicKeyInfo prefix of an Ed25519 public key (RFC 8410); the raw key follows.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    raw: [u8; 32],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid())
    }
}

impl PublicKey {
    fn from_pem(text: &str) -> Result<Self, String> {
        let block = pem::parse(text).map_err(|e| format!("not a PEM: {e}"))?;
        let der = block.contents();
        let raw = der
            .strip_prefix(&SPKI_ED25519_PREFIX[..])
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or("not an Ed25519 public key (PEM \"PUBLIC KEY\", RFC 8410)")?;
        Ok(Self { raw })
    }

    fn to_pem(&self) -> String {
        let der = [&SPKI_ED25519_PREFIX[..], &self.raw[..]].concat();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Key id: the first 16 characters of the base64url SHA-256 of the key.
    pub fn kid(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.raw))[..16].to_owned()
    }

    /// The key as a JWK (RFC 8037), for `/.well-known/jwks.json`.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.raw),
            "use": "sig",
            "alg": "EdDSA",
            "kid": self.kid(),
        })
    }

    /// Reads `JWT_PUBLIC_KEY`, or derives it from `JWT_PRIVATE_KEY`, or uses (generating if
    /// needed) the development pair in the data directory.
    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        if let Some(value) = config::optional(src, "JWT_PUBLIC_KEY") {
            let text = pem_or_path("JWT_PUBLIC_KEY", &value)?;
            return Self::from_pem(&text).map_err(|e| ConfigError::new("JWT_PUBLIC_KEY", e));
        }
        Ok(SigningKey::from_env(src)?.public)
    }
}

/// The private key, held only by command-api.
#[derive(Clone)]
pub struct SigningKey {
    pkcs8: Vec<u8>,
    pub public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public.kid())
    }
}

impl SigningKey {
    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|_| "not an Ed25519 private key (PEM \"PRIVATE KEY\", PKCS#8)".to_owned())?;
        let raw = <[u8; 32]>::try_from(pair.public_key().as_ref())
            .map_err(|_| "unexpected public key length".to_owned())?;
        Ok(Self {
            pkcs8,
            public: PublicKey { raw },
        })
    }

    /// PKCS#8 DER, as `jsonwebtoken::EncodingKey::from_ed_der` takes it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn from_env(src: &dyn Source) -> Result<Self, ConfigError> {
        match config::optional(src, "JWT_PRIVATE_KEY") {
            Some(value) => {
                let text = pem_or_path("JWT_PRIVATE_KEY", &value)?;
                let block = pem::parse(&text)
                    .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", format!("not a PEM: {e}")))?;
                Self::from_pkcs8(block.into_contents())
                    .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", e))
            }
            None => Self::development(&config::data_dir(src).join("jwt"))
                .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", e)),
        }
    }

    /// The development pair under `dir`, generated on first use.
    fn development(dir: &Path) -> Result<Self, String> {
        let private = dir.join("ed25519.pem");
        if let Ok(text) = std::fs::read_to_string(&private) {
            let block = pem::parse(&text).map_err(|e| format!("{}: {e}", private.display()))?;
            return Self::from_pkcs8(block.into_contents());
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "could not generate a key".to_owned())?;
        let key = Self::from_pkcs8(pkcs8.as_ref().to_vec())?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", key.pkcs8.clone()));
        write_new(&private, &pem)?;
        write_new(&dir.join("ed25519.pub.pem"), &key.public.to_pem())?;
        tracing::warn!(
            path = %private.display(),
            "JWT_PRIVATE_KEY is not set: generated a development signing key; set JWT_PRIVATE_KEY and JWT_PUBLIC_KEY in production"
        );
        // Another process may have won the race to create it: use whatever is on disk.
        let text =
            std::fs::read_to_string(&private).map_err(|e| format!("{}: {e}", private.display()))?;
        let block = pem::parse(&text).map_err(|e| format!("{}: {e}", private.display()))?;
        Self::from_pkcs8(block.into_contents())
    }
}

/// Writes `contents` unless the file exists already.
fn write_new(path: &PathBuf, contents: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => file
            .write_all(contents.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn pem_or_path(name: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|e| {
        ConfigError::new(
            name,
            // The value is never shown: it may be a key in a form we do not read.
            format!("is neither a PEM (-----BEGIN …) nor the path of a readable file ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_generated_pair_is_found_again_and_its_public_half_round_trips_through_pem() {
        let dir = std::env::temp_dir().join(format!("camreviews-keys-{}", uuid::Uuid::new_v4()));
        let first = SigningKey::development(&dir).unwrap();
        let again = SigningKey::development(&dir).unwrap();
        assert_eq!(first.public, again.public);
        assert_eq!(
            PublicKey::from_pem(&first.public.to_pem()).unwrap(),
            first.public
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keys_given_as_a_path_or_an_inline_pem_override_the_development_pair() {
        let dir = std::env::temp_dir().join(format!("camreviews-keys-{}", uuid::Uuid::new_v4()));
        let generated = SigningKey::development(&dir).unwrap();
        let private_path = dir.join("ed25519.pem").display().to_string();
        let public_pem = std::fs::read_to_string(dir.join("ed25519.pub.pem")).unwrap();
        let src: HashMap<String, String> = [
            ("JWT_PRIVATE_KEY".to_owned(), private_path),
            ("JWT_PUBLIC_KEY".to_owned(), public_pem),
            ("CAMREVIEWS_DATA_DIR".to_owned(), "/nonexistent".to_owned()),
        ]
        .into();
        assert_eq!(SigningKey::from_env(&src).unwrap().public, generated.public);
        assert_eq!(PublicKey::from_env(&src).unwrap(), generated.public);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unreadable_key_names_the_variable() {
        let src: HashMap<String, String> = [(
            "JWT_PUBLIC_KEY".to_owned(),
            "/nonexistent/key.pem".to_owned(),
        )]
        .into();
        let err = PublicKey::from_env(&src).unwrap_err();
        assert_eq!(err.name, "JWT_PUBLIC_KEY");
    }
}
