//! Access control of the preview server: the `[preview]` config section ([`PreviewConfig`]),
//! the credential check of each request ([`PreviewAuth`]) and the password hashing behind
//! `c3n-edge config --hash-password` ([`hash_password`]).
//!
//! Two credentials, either or both: HTTP Basic (`user` + `password_hash`, an Argon2id PHC
//! string) and a bearer token read from `token_file` at start. Argon2 is slow on purpose, so at
//! most one verification runs at a time (memory stays at one hash's cost, about 19 MiB with the
//! default parameters) and the SHA-256 of the last accepted `Authorization` header is kept: the
//! page's polling and MJPEG reconnects then cost a hash and a constant-time comparison, not an
//! argon2 run. A wrong password always costs a full run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Default of `[preview] max_viewers` (and `?viewers=N`): concurrent MJPEG streams.
pub const DEFAULT_MAX_VIEWERS: usize = 4;
/// Largest accepted `max_viewers` (each viewer holds one thread).
pub const MAX_VIEWERS_LIMIT: usize = 64;
/// Default of `[preview] timeout_s` (and `?timeout=S`): read/write timeout of a connection, s.
pub const DEFAULT_TIMEOUT_S: u64 = 5;
/// Largest accepted `timeout_s`.
pub const MAX_TIMEOUT_S: u64 = 300;
/// The realm sent with a 401.
pub const REALM: &str = "c3n-edge";

/// Errors of the preview's credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `[preview]` values that do not fit together or do not parse.
    #[error("[preview] {0}")]
    Invalid(String),
    /// The token file cannot be read.
    #[error("[preview] token_file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Hashing a password failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// `[preview]` section: credentials and limits of the `http://` preview server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewConfig {
    /// HTTP Basic user name (with `password_hash`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Argon2 PHC string of the Basic password (`c3n-edge config --hash-password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// File holding a bearer token (read at start, surrounding whitespace trimmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Concurrent MJPEG viewers; more get a 503 (`?viewers=N` wins).
    pub max_viewers: usize,
    /// Read/write timeout of a connection in seconds (`?timeout=S` wins).
    pub timeout_s: u64,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self {
            user: None,
            password_hash: None,
            token_file: None,
            max_viewers: DEFAULT_MAX_VIEWERS,
            timeout_s: DEFAULT_TIMEOUT_S,
        }
    }
}

impl PreviewConfig {
    /// Checks that the values fit together (the token file is read at start, not here).
    pub fn validate(&self) -> Result<(), AuthError> {
        match (&self.user, &self.password_hash) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(AuthError::Invalid(
                    "user and password_hash go together".into(),
                ))
            }
            (Some(u), Some(h)) => {
                if u.is_empty() || u.contains(':') {
                    return Err(AuthError::Invalid(
                        "user must be non-empty and without ':'".into(),
                    ));
                }
                PasswordHash::new(h).map_err(|e| {
                    AuthError::Invalid(format!(
                        "password_hash is not a PHC string ({e}); make one with \
                         `c3n-edge config --hash-password`"
                    ))
                })?;
            }
            (None, None) => {}
        }
        check_viewers(self.max_viewers).map_err(|e| AuthError::Invalid(e.to_string()))?;
        check_timeout(self.timeout_s).map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(())
    }
}

/// A preview limit out of its range ([`check_viewers`], [`check_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `max_viewers` / `?viewers=` outside 1..=[`MAX_VIEWERS_LIMIT`].
    #[error("max_viewers {0}: expected 1..={MAX_VIEWERS_LIMIT}")]
    Viewers(usize),
    /// `timeout_s` / `?timeout=` outside 1..=[`MAX_TIMEOUT_S`] seconds.
    #[error("timeout {0}: expected 1..={MAX_TIMEOUT_S} seconds")]
    Timeout(u64),
}

/// `max_viewers` / `?viewers=` in 1..=[`MAX_VIEWERS_LIMIT`].
///
/// Errors: [`LimitError::Viewers`].
pub fn check_viewers(n: usize) -> Result<(), LimitError> {
    if (1..=MAX_VIEWERS_LIMIT).contains(&n) {
        Ok(())
    } else {
        Err(LimitError::Viewers(n))
    }
}

/// `timeout_s` / `?timeout=` in 1..=[`MAX_TIMEOUT_S`].
///
/// Errors: [`LimitError::Timeout`].
pub fn check_timeout(s: u64) -> Result<(), LimitError> {
    if (1..=MAX_TIMEOUT_S).contains(&s) {
        Ok(())
    } else {
        Err(LimitError::Timeout(s))
    }
}

/// Hashes `password` with Argon2id (the crate's default parameters: 19 MiB, 2 passes, 1 lane)
/// and a random salt; returns the PHC string for `[preview] password_hash`.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The credentials a preview server accepts.
#[derive(Default)]
pub struct PreviewAuth {
    basic: Option<(String, String)>,
    token: Option<Vec<u8>>,
    last_ok: Mutex<Option<[u8; 32]>>,
    argon: Mutex<()>,
}

impl std::fmt::Debug for PreviewAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewAuth")
            .field("basic", &self.basic.as_ref().map(|(u, _)| u))
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl PreviewAuth {
    /// The credentials of `cfg` (reads the token file); `None` when none is configured.
    pub fn from_config(cfg: &PreviewConfig) -> Result<Option<Self>, AuthError> {
        cfg.validate()?;
        let token = match &cfg.token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let basic = cfg.user.clone().zip(cfg.password_hash.clone());
        if basic.is_none() && token.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            basic,
            token,
            ..Self::default()
        }))
    }

    /// The `WWW-Authenticate` value of a 401: Basic when a password is set (browsers then ask
    /// for it), else Bearer.
    pub fn challenge(&self) -> String {
        if self.basic.is_some() {
            format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")
        } else {
            format!("Bearer realm=\"{REALM}\"")
        }
    }

    /// Whether the `Authorization` header value carries an accepted credential.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization.map(str::trim) else {
            return false;
        };
        let (scheme, cred) = value.split_once(' ').unwrap_or((value, ""));
        let cred = cred.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .token
                .as_ref()
                .is_some_and(|t| bool::from(t.as_slice().ct_eq(cred.as_bytes())));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Some((user, phc)) = &self.basic else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let cached = *self.last_ok.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_some_and(|c| bool::from(c.ct_eq(&digest))) {
            return true;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(cred) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (u, p) = (&decoded[..colon], &decoded[colon + 1..]);
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = {
            let _one_at_a_time = self.argon.lock().unwrap_or_else(|e| e.into_inner());
            Argon2::default().verify_password(p, &hash).is_ok()
        };
        let ok = ok & bool::from(u.ct_eq(user.as_bytes()));
        if ok {
            *self.last_ok.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
        }
        ok
    }
}

fn read_token(path: &Path) -> Result<Vec<u8>, AuthError> {
    // a token is short: refuse a file that is not (no allocation sized by it)
    const MAX: u64 = 4096;
    let io = |source| AuthError::TokenFile {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX {
        return Err(AuthError::Invalid(format!(
            "token_file {}: {len} bytes, a token has at most {MAX}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AuthError::Invalid(format!(
            "token_file {}: the token must be at least 16 characters without spaces \
             (e.g. `openssl rand -hex 32`)",
            path.display()
        )));
    }
    Ok(token.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    #[test]
    fn basic_and_bearer() {
        let dir = std::env::temp_dir().join(format!("c3n-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tf = dir.join("token");
        std::fs::write(&tf, "  0123456789abcdef0123\n").unwrap();
        let cfg = PreviewConfig {
            user: Some("alice".into()),
            password_hash: Some(hash_password("s3cret pw").unwrap()),
            token_file: Some(tf),
            ..PreviewConfig::default()
        };
        let a = PreviewAuth::from_config(&cfg).unwrap().unwrap();
        assert!(a.check(Some(&basic("alice", "s3cret pw"))));
        assert!(a.check(Some(&basic("alice", "s3cret pw")))); // cached
        assert!(!a.check(Some(&basic("alice", "s3cret pX"))));
        assert!(!a.check(Some(&basic("bob", "s3cret pw"))));
        assert!(!a.check(Some("Basic !!!")));
        assert!(a.check(Some("Bearer 0123456789abcdef0123")));
        assert!(a.check(Some("bearer 0123456789abcdef0123")));
        assert!(!a.check(Some("Bearer 0123456789abcdef012")));
        assert!(!a.check(Some("Bearer ")));
        assert!(!a.check(None));
        assert!(a.challenge().starts_with("Basic realm=\"c3n-edge\""));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn config_checks() {
        assert!(PreviewAuth::from_config(&PreviewConfig::default())
            .unwrap()
            .is_none());
        for bad in [
            PreviewConfig {
                user: Some("a".into()),
                ..PreviewConfig::default()
            },
            PreviewConfig {
                user: Some("a".into()),
                password_hash: Some("plaintext".into()),
                ..PreviewConfig::default()
            },
            PreviewConfig {
                max_viewers: 0,
                ..PreviewConfig::default()
            },
            PreviewConfig {
                timeout_s: 0,
                ..PreviewConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let short = std::env::temp_dir().join(format!("c3n-short-{}", std::process::id()));
        std::fs::write(&short, "abc").unwrap();
        let e = PreviewAuth::from_config(&PreviewConfig {
            token_file: Some(short.clone()),
            ..PreviewConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        std::fs::remove_file(short).ok();
    }
}
