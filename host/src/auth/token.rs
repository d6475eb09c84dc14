//! Signed tokens: JWTs with HS256, the format seed 002's clients already handle. The key never
//! leaves the state directory; the comparison of signatures is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id (`admin` in secret mode).
    pub sub: String,
    pub name: String,
    pub role: super::Role,
    pub kind: TokenKind,
    /// What a cookie-authenticated request may send as `X-CSRF-Token` instead of an `Origin`.
    pub csrf: String,
    pub iat: u64,
    pub exp: u64,
    /// The bearer's Unix user, where the login had one (the daemon owner's local token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// When it was issued, in milliseconds: a sign-out ends every token issued before it, and
    /// seconds can't tell a token of the same second apart.
    #[serde(default)]
    pub iat_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A browser session (secret mode, or users mode through the cookie).
    Session,
    /// A short-lived access token of users mode, renewed with a refresh token.
    Access,
    /// Given to each job (`GANTRY_TOKEN`) so that it can call the daemon as its owner, with a
    /// user's role whatever the owner's: report progress (seed 000), submit follow-up jobs.
    Job,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    Signature,
    #[error("the token has expired")]
    Expired,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn sign(key: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let body = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body.as_bytes());
    format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
}

pub fn verify(key: &[u8], token: &str, now_s: u64) -> Result<Claims, TokenError> {
    let (body, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = body.split_once('.').ok_or(TokenError::Malformed)?;
    let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body.as_bytes());
    mac.verify_slice(&signature).map_err(|_| TokenError::Signature)?;
    // Only after the signature: nothing unauthenticated is parsed beyond base64.
    if B64.decode(header).ok().as_deref() != Some(HEADER.as_bytes()) {
        return Err(TokenError::Malformed);
    }
    let claims: Claims = B64.decode(payload).ok().and_then(|p| serde_json::from_slice(&p).ok()).ok_or(TokenError::Malformed)?;
    if claims.exp <= now_s {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims { sub: "u1".into(), name: "ada".into(), role: crate::auth::Role::User, kind: TokenKind::Access, csrf: "c".into(), iat: 1, exp, uid: None, iat_ms: 1000 }
    }

    #[test]
    fn round_trip_and_refusals() {
        let token = sign(b"key", &claims(100));
        assert_eq!(verify(b"key", &token, 50), Ok(claims(100)));
        assert_eq!(verify(b"other", &token, 50), Err(TokenError::Signature));
        assert_eq!(verify(b"key", &token, 100), Err(TokenError::Expired));
        assert_eq!(verify(b"key", "abc", 50), Err(TokenError::Malformed));
        // A payload changed after signing (a role raised) no longer matches its signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = claims(100);
        forged.role = crate::auth::Role::Admin;
        parts[1] = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(verify(b"key", &parts.join("."), 50), Err(TokenError::Signature));
    }
}
