//! Accounts of users mode (seed 002): argon2 password hashes, roles, long-lived API tokens and
//! refresh tokens, in the daemon's SQLite database. Tokens are stored as SHA-256 digests only, so
//! the database does not hand out working credentials. Every call blocks (SQLite, argon2): the
//! HTTP layer calls it off the async threads.

use super::{AuthError, Role};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// An account as `/auth/users/me` shows it (seed 002's fields, plus the role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
    pub created_ms: u64,
    /// The Unix user this account acts as (an admin binds it): on a system daemon its jobs run
    /// as that user, and files are read for it with that user's rights.
    #[serde(default)]
    pub unix_user: Option<String>,
    /// Tokens issued before this (ms) no longer work: set by a sign-out or a password change.
    #[serde(default)]
    pub signed_out_ms: u64,
}

impl User {
    /// What jobs record as their owner.
    pub fn name(&self) -> &str {
        &self.email
    }
}

/// The profile fields a user may change about themselves.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub organization: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    /// Only an admin creating an account may set it; registration always gets `user`. The first
    /// admin is made locally (`gantry user add --admin`, over the daemon's socket), never by
    /// whoever reaches `/auth/register` first.
    #[serde(default)]
    pub role: Option<Role>,
}

/// An API token as listed: never the token itself after creation.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_ms: u64,
}

const MIN_PASSWORD: usize = 8;
const API_TOKEN_PREFIX: &str = "gty_";

pub struct UserStore {
    conn: parking_lot::Mutex<Connection>,
    path: PathBuf,
}

/// How a token is kept: its SHA-256, in hex (a stolen database gives no working token).
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).unwrap_or_else(|e| panic!("the OS random source failed: {e}"));
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl UserStore {
    /// Opens the accounts in the database that [`crate::store::Store::open`] migrated.
    pub fn open(path: &Path) -> Result<UserStore, AuthError> {
        let conn = crate::store::connect(path)?;
        Ok(UserStore { conn: parking_lot::Mutex::new(conn), path: path.to_path_buf() })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> AuthError + '_ {
        |source| AuthError::Database { path: self.path.clone(), source }
    }

    fn row(data: String) -> Result<User, AuthError> {
        Ok(serde_json::from_str(&data)?)
    }

    pub fn create(&self, new: NewUser, by_admin: bool) -> Result<User, AuthError> {
        let email = new.email.trim().to_string();
        if !email.contains('@') || email.len() < 3 || email.len() > 254 {
            return Err(AuthError::Invalid { field: "email", message: format!("'{email}' is not an e-mail address") });
        }
        check_password(&new.password)?;
        let hash = hash_password(&new.password)?;
        let conn = self.conn.lock();
        let role = match (by_admin, new.role) {
            (true, Some(role)) => role,
            _ => Role::User,
        };
        let user = User {
            id: random_hex(16),
            email: email.clone(),
            first_name: new.first_name,
            last_name: new.last_name,
            organization: new.organization,
            role,
            is_active: true,
            is_superuser: role == Role::Admin,
            is_verified: false,
            created_ms: crate::model::now_ms(),
            unix_user: None,
            signed_out_ms: 0,
        };
        let data = serde_json::to_string(&user)?;
        let inserted = conn.execute(
            "INSERT INTO users (id, email, password_hash, role, data) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(email) DO NOTHING",
            params![user.id, email, hash, role.as_str(), data],
        );
        match inserted.map_err(self.sql())? {
            0 => Err(AuthError::Conflict(format!("an account for {email} exists already"))),
            _ => Ok(user),
        }
    }

    /// The account for these credentials. A wrong e-mail costs the same hashing as a wrong
    /// password, so timing does not tell which accounts exist.
    pub fn login(&self, email: &str, password: &str) -> Result<User, AuthError> {
        let found: Option<(String, String)> = self
            .conn
            .lock()
            .query_row("SELECT password_hash, data FROM users WHERE email = ?1", params![email.trim()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.sql())?;
        let Some((hash, data)) = found else {
            let _ = hash_password(password);
            return Err(AuthError::BadCredentials);
        };
        let parsed = PasswordHash::new(&hash).map_err(AuthError::Hashing)?;
        Argon2::default().verify_password(password.as_bytes(), &parsed).map_err(|_| AuthError::BadCredentials)?;
        let user = Self::row(data)?;
        if !user.is_active {
            return Err(AuthError::Inactive);
        }
        Ok(user)
    }

    pub fn get(&self, id: &str) -> Result<User, AuthError> {
        let data: Option<String> = self.conn.lock().query_row("SELECT data FROM users WHERE id = ?1", params![id], |r| r.get(0)).optional().map_err(self.sql())?;
        Self::row(data.ok_or(AuthError::NoSuchUser)?)
    }

    pub fn list(&self) -> Result<Vec<User>, AuthError> {
        let conn = self.conn.lock();
        let mut statement = conn.prepare("SELECT data FROM users ORDER BY email").map_err(self.sql())?;
        let rows = statement.query_map([], |r| r.get::<_, String>(0)).map_err(self.sql())?;
        rows.map(|r| r.map_err(self.sql()).and_then(Self::row)).collect()
    }

    pub fn update(&self, id: &str, profile: Profile) -> Result<User, AuthError> {
        let mut user = self.get(id)?;
        if let Some(v) = profile.first_name {
            user.first_name = Some(v);
        }
        if let Some(v) = profile.last_name {
            user.last_name = Some(v);
        }
        if let Some(v) = profile.organization {
            user.organization = Some(v);
        }
        let hash = match &profile.password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        if hash.is_some() {
            // A new password ends what the old one let in: sessions, access and refresh tokens.
            user.signed_out_ms = crate::model::now_ms();
            self.revoke_all(&user.id, "refresh")?;
        }
        self.save(&user, hash)
    }

    /// Ends every session and access token of the account, and its refresh tokens.
    pub fn sign_out(&self, id: &str) -> Result<User, AuthError> {
        let mut user = self.get(id)?;
        user.signed_out_ms = crate::model::now_ms();
        self.revoke_all(id, "refresh")?;
        self.save(&user, None)
    }

    fn revoke_all(&self, user_id: &str, kind: &str) -> Result<(), AuthError> {
        self.conn.lock().execute("DELETE FROM tokens WHERE user_id = ?1 AND kind = ?2", params![user_id, kind]).map_err(self.sql())?;
        Ok(())
    }

    /// An admin's change: the role, whether the account is active, and the Unix user it is
    /// bound to (`Some("")` unbinds it). What is not given stays.
    pub fn change(&self, id: &str, role: Option<Role>, active: Option<bool>, unix_user: Option<String>) -> Result<User, AuthError> {
        let mut user = self.get(id)?;
        if let Some(role) = role {
            user.role = role;
            user.is_superuser = role == Role::Admin;
        }
        if let Some(active) = active {
            user.is_active = active;
        }
        if let Some(name) = unix_user {
            user.unix_user = (!name.is_empty()).then_some(name);
        }
        self.save(&user, None)
    }

    fn save(&self, user: &User, hash: Option<String>) -> Result<User, AuthError> {
        let data = serde_json::to_string(user)?;
        let conn = self.conn.lock();
        conn.execute("UPDATE users SET role = ?2, data = ?3 WHERE id = ?1", params![user.id, user.role.as_str(), data]).map_err(self.sql())?;
        if let Some(hash) = hash {
            conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![user.id, hash]).map_err(self.sql())?;
        }
        Ok(user.clone())
    }

    /// A new token of `kind` for the user; only its digest is kept.
    pub fn issue_token(&self, user_id: &str, kind: &str, name: &str, expires_ms: Option<u64>) -> Result<(String, TokenInfo), AuthError> {
        let token = format!("{API_TOKEN_PREFIX}{}", random_hex(24));
        let created_ms = crate::model::now_ms();
        let id = digest(&token);
        self.conn
            .lock()
            .execute(
                "INSERT INTO tokens (digest, user_id, kind, name, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, user_id, kind, name, created_ms as i64, expires_ms.map(|e| e as i64)],
            )
            .map_err(self.sql())?;
        Ok((token, TokenInfo { id: id[..16].to_string(), name: name.into(), created_ms }))
    }

    /// The active account a token of `kind` belongs to.
    pub fn token_user(&self, token: &str, kind: &str) -> Result<User, AuthError> {
        let found: Option<(String, Option<i64>)> = self
            .conn
            .lock()
            .query_row("SELECT user_id, expires_ms FROM tokens WHERE digest = ?1 AND kind = ?2", params![digest(token), kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.sql())?;
        let (user_id, expires) = found.ok_or(AuthError::BadToken)?;
        if expires.is_some_and(|e| e <= crate::model::now_ms() as i64) {
            return Err(AuthError::BadToken);
        }
        let user = self.get(&user_id)?;
        if !user.is_active {
            return Err(AuthError::Inactive);
        }
        Ok(user)
    }

    pub fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        Ok(self.conn.lock().execute("DELETE FROM tokens WHERE digest = ?1", params![digest(token)]).map_err(self.sql())? > 0)
    }

    pub fn tokens(&self, user_id: &str, kind: &str) -> Result<Vec<TokenInfo>, AuthError> {
        let conn = self.conn.lock();
        let mut statement = conn.prepare("SELECT digest, name, created_ms FROM tokens WHERE user_id = ?1 AND kind = ?2 ORDER BY created_ms").map_err(self.sql())?;
        let rows = statement
            .query_map(params![user_id, kind], |r| {
                let digest: String = r.get(0)?;
                Ok(TokenInfo { id: digest.chars().take(16).collect(), name: r.get(1)?, created_ms: r.get::<_, i64>(2)? as u64 })
            })
            .map_err(self.sql())?;
        rows.map(|r| r.map_err(self.sql())).collect()
    }

    /// Deletes the user's token whose listed id is `id`.
    pub fn delete_token(&self, user_id: &str, id: &str) -> Result<bool, AuthError> {
        if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let deleted = self
            .conn
            .lock()
            .execute("DELETE FROM tokens WHERE user_id = ?1 AND substr(digest, 1, 16) = ?2", params![user_id, id])
            .map_err(self.sql())?;
        Ok(deleted > 0)
    }
}

fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::Invalid { field: "password", message: format!("must be at least {MIN_PASSWORD} characters") });
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(AuthError::Hashing)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(AuthError::Hashing)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("gantry.db");
        crate::store::Store::open(&db).expect("migrated");
        let users = UserStore::open(&db).expect("open");
        (dir, users)
    }

    fn new(email: &str) -> NewUser {
        NewUser { email: email.into(), password: "correct horse".into(), first_name: None, last_name: None, organization: Some("lab".into()), role: Some(Role::Admin) }
    }

    #[test]
    fn registrations_are_users_and_only_an_admin_gives_a_role() {
        let (_dir, users) = store();
        // A self-registration can't choose its role, not even the very first.
        assert_eq!(users.create(new("a@x.org"), false).expect("first").role, Role::User);
        assert_eq!(users.create(new("b@x.org"), true).expect("by an admin").role, Role::Admin);
        assert!(matches!(users.create(new("A@x.org"), false), Err(AuthError::Conflict(_))));
        let short = NewUser { password: "short".into(), ..new("c@x.org") };
        assert!(matches!(users.create(short, false), Err(AuthError::Invalid { field: "password", .. })));
    }

    #[test]
    fn passwords_and_tokens() {
        let (_dir, users) = store();
        let user = users.create(new("a@x.org"), false).expect("create");
        assert_eq!(users.login("a@x.org", "correct horse").expect("login").id, user.id);
        assert!(matches!(users.login("a@x.org", "wrong horse"), Err(AuthError::BadCredentials)));
        assert!(matches!(users.login("nobody@x.org", "correct horse"), Err(AuthError::BadCredentials)));
        let (token, info) = users.issue_token(&user.id, "api", "ci", None).expect("token");
        assert_eq!(users.token_user(&token, "api").expect("valid").id, user.id);
        assert!(matches!(users.token_user(&token, "refresh"), Err(AuthError::BadToken)));
        assert_eq!(users.tokens(&user.id, "api").expect("list").len(), 1);
        assert!(users.delete_token(&user.id, &info.id).expect("delete"));
        assert!(matches!(users.token_user(&token, "api"), Err(AuthError::BadToken)));
        let (expired, _) = users.issue_token(&user.id, "refresh", "s", Some(1)).expect("token");
        assert!(matches!(users.token_user(&expired, "refresh"), Err(AuthError::BadToken)));
    }
}
