//! Who may call the daemon. By configuration (`[auth] mode`):
//!
//! - `none`: no accounts: the daemon belongs to the Unix user running it. Over its Unix socket
//!   that user (and root) is recognised by the kernel (`SO_PEERCRED`); over TCP by the local
//!   token in `<state>/local.token`, which only that user can read. Only for loopback: the
//!   daemon refuses to listen beyond it in this mode unless `allow_open_network` says so.
//! - `secret` (seed 001): one shared secret; logging in with it gives an admin session.
//! - `users` (seed 002): accounts with argon2 passwords and the roles admin, user and viewer;
//!   JWT access tokens with refresh tokens, and long-lived API tokens for scripts.
//!
//! - `token`: signed tokens (HS256 JWTs);
//! - `users`: the accounts and their tokens in SQLite;
//! - `limiter`: failed logins per client address and per account.

pub mod limiter;
pub mod token;
pub mod users;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use subtle::ConstantTimeEq;
pub use crate::model::{Principal, Role};
pub use token::{Claims, TokenKind};
pub use users::{NewUser, Profile, TokenInfo, User, UserStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Secret,
    Users,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Secret mode's secret; `None`: generated at first start, printed once, kept in the state dir.
    pub secret: Option<String>,
    /// Users mode: whether anyone may register (`/auth/register`), or only admins create accounts.
    pub allow_register: bool,
    /// Mode `none` on an address beyond loopback, knowingly.
    pub allow_open_network: bool,
    /// Lifetime of browser sessions.
    pub session_ttl: Duration,
    /// Lifetime of users-mode access tokens (renewed with the refresh token).
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Failed logins one address may make per minute before it has to wait.
    pub login_attempts_per_minute: u32,
    /// Members of this Unix group are admins on the socket, as root and the daemon's user are.
    pub admin_group: Option<String>,
    /// Whether everyone may see everyone's commands, environments and logs.
    pub privacy: Privacy,
    /// On a daemon that is not a system daemon, whether web accounts that are not admins may
    /// submit: their jobs run as the daemon's own user, so by default only admins may.
    pub accounts_may_submit: bool,
}

/// What a user sees of other users' jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// That they exist, their queue, GPUs, state and times, as `squeue` shows; not their
    /// command, environment, working directory or log.
    #[default]
    Closed,
    Open,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            secret: None,
            allow_register: false,
            allow_open_network: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            login_attempts_per_minute: 10,
            admin_group: None,
            privacy: Privacy::Closed,
            accounts_may_submit: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("wrong secret")]
    BadSecret,
    #[error("the token is not valid (expired, revoked or unknown)")]
    BadToken,
    #[error("this account is deactivated")]
    Inactive,
    #[error("no such account")]
    NoSuchUser,
    #[error("`{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("registration is closed: an admin creates accounts")]
    RegistrationClosed,
    #[error("this needs auth mode `{0}`")]
    WrongMode(&'static str),
    #[error("too many failed logins from this address; try again in {0} s")]
    RateLimited(u64),
    #[error("log in first: send `Authorization: Bearer <token>` or the session cookie")]
    NoCredentials,
    #[error("this daemon belongs to the user running it: use the gantry CLI (it talks over the daemon's Unix socket), or send `Authorization: Bearer <token>` with the token from local.token in its state directory")]
    NoLocalToken,
    #[error("a change made with the session cookie needs this server's Origin or the X-CSRF-Token header")]
    Csrf,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {source}")]
    Database { path: PathBuf, source: rusqlite::Error },
    #[error("account record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("password hashing: {0}")]
    Hashing(argon2::password_hash::Error),
    #[error("the OS random source: {0}")]
    Random(getrandom::Error),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// An account as a caller. Bound to a Unix user, it is that user (their name owns its jobs, as
/// over the socket, and their uid runs them and reads files); the lookup in the password
/// database blocks, and callers are off the async threads. A binding to a user that no longer
/// exists gives no Unix identity.
fn principal_of(user: &User) -> Principal {
    let account = Principal::account(user.id.clone(), user.name(), user.role);
    match user.unix_user.as_deref().and_then(|name| crate::unix::Account::by_name(name).ok()) {
        Some(unix) => Principal { name: unix.name, uid: Some(unix.uid), ..account },
        None => account,
    }
}

/// A token handed to a client, with what goes with it.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub csrf: String,
    pub expires_s: u64,
}

/// The daemon's authentication state: mode, keys, accounts and the login limiter.
pub struct Authority {
    config: AuthConfig,
    /// Signs tokens. In secret mode it is derived from the secret too, so changing the secret
    /// ends every session.
    key: Vec<u8>,
    secret: Option<String>,
    users: Option<UserStore>,
    /// The daemon's own Unix user: who the local token (mode `none`) makes a caller.
    owner: Principal,
    /// Secret and `none` modes: sessions issued before this (ms) were signed out. Kept in
    /// `<state>/auth.signed_out` so that a restart does not bring them back.
    signed_out_ms: std::sync::atomic::AtomicU64,
    signed_out_file: PathBuf,
    /// A system daemon (`serve --system`): it serves every local user and runs jobs as their
    /// submitters.
    system: bool,
    pub limiter: limiter::LoginLimiter,
}

const KEY_FILE: &str = "auth.key";
const SECRET_FILE: &str = "auth.secret";
const SIGNED_OUT_FILE: &str = "auth.signed_out";
/// How long a job's token works: longer than training runs last.
const JOB_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Mode `none`'s token: readable by the daemon's user alone (0600 in a 0700 directory), so
/// presenting it proves the caller is that user (or root), as pueue's shared secret does.
pub const LOCAL_TOKEN_FILE: &str = "local.token";

impl Authority {
    /// Reads (or makes) the signing key and, in secret mode without a configured secret, the
    /// generated secret. The second value is a line to show once: the secret just generated.
    pub fn open(config: AuthConfig, owner: Principal, system: bool, state_dir: &Path, db: &Path) -> Result<(Authority, Option<String>), AuthError> {
        let key = read_or_create(&state_dir.join(KEY_FILE), || users::random_hex(32))?;
        let mut notice = None;
        let secret = match (config.mode, &config.secret) {
            (AuthMode::Secret, Some(secret)) => Some(secret.clone()),
            (AuthMode::Secret, None) => {
                let path = state_dir.join(SECRET_FILE);
                let existed = path.exists();
                let secret = read_or_create(&path, || users::random_hex(12))?;
                if !existed {
                    notice = Some(format!("auth: generated the access secret {secret} (kept in {}; set auth.secret to choose one)", path.display()));
                }
                Some(secret)
            }
            (AuthMode::None, _) => Some(read_or_create(&state_dir.join(LOCAL_TOKEN_FILE), || users::random_hex(24))?),
            (AuthMode::Users, _) => None,
        };
        let key = match &secret {
            Some(secret) => {
                use hmac::Mac;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!("any key length"));
                mac.update(secret.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            None => key.into_bytes(),
        };
        let users = match config.mode {
            AuthMode::Users => Some(UserStore::open(db)?),
            _ => None,
        };
        let limiter = limiter::LoginLimiter::new(config.login_attempts_per_minute, Duration::from_secs(60));
        let signed_out_file = state_dir.join(SIGNED_OUT_FILE);
        let signed_out_ms = std::fs::read_to_string(&signed_out_file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let signed_out_ms = std::sync::atomic::AtomicU64::new(signed_out_ms);
        Ok((Authority { config, key, secret, users, owner, system, signed_out_ms, signed_out_file, limiter }, notice))
    }

    pub fn mode(&self) -> AuthMode {
        self.config.mode
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Whether `given` is the secret (secret mode) or the local token (mode `none`), compared
    /// in constant time: the admin, or the daemon's owner.
    pub fn check_secret(&self, given: &str) -> Result<Principal, AuthError> {
        let secret = self.secret.as_deref().ok_or(AuthError::WrongMode("secret"))?;
        if !bool::from(secret.as_bytes().ct_eq(given.as_bytes())) {
            return Err(AuthError::BadSecret);
        }
        Ok(match self.config.mode {
            AuthMode::None => self.owner.clone(),
            _ => Principal::account("admin", "admin", Role::Admin),
        })
    }

    /// The token a job of `owner`'s gets: it acts as that owner with a user's role, and with
    /// the Unix identity the job runs as.
    pub fn job_token(&self, owner: &str, uid: Option<u32>) -> String {
        let who = Principal { uid, ..Principal::account(format!("job-of:{owner}"), owner, Role::User) };
        self.issue(&who, TokenKind::Job).token
    }

    /// The daemon's own user.
    pub fn owner(&self) -> &Principal {
        &self.owner
    }

    pub fn system(&self) -> bool {
        self.system
    }

    pub fn issue(&self, who: &Principal, kind: TokenKind) -> Issued {
        let ttl = match kind {
            TokenKind::Session => self.config.session_ttl,
            TokenKind::Access => self.config.access_ttl,
            TokenKind::Job => JOB_TOKEN_TTL,
        };
        let now = crate::model::now_ms() / 1000;
        let iat_ms = crate::model::now_ms();
        let claims = Claims { sub: who.id.clone(), name: who.name.clone(), role: who.role, kind, csrf: users::random_hex(16), iat: now, exp: now + ttl.as_secs(), uid: who.uid, iat_ms };
        Issued { token: token::sign(&self.key, &claims), csrf: claims.csrf, expires_s: ttl.as_secs() }
    }

    /// A signed token's claims. Users-mode tokens name an account that must still exist and be
    /// active with the same role; that check needs the database, see [`Authority::current`].
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        token::verify(&self.key, token, crate::model::now_ms() / 1000).map_err(|_| AuthError::BadToken)
    }

    pub fn users(&self) -> Result<&UserStore, AuthError> {
        self.users.as_ref().ok_or(AuthError::WrongMode("users"))
    }

    /// Users mode: the account behind verified claims as it is now (a deactivated account or a
    /// changed role takes effect at once, not when the token expires). Blocks.
    /// A token issued before a sign-out (of its account, or in secret and `none` modes of the
    /// one identity they have) is refused.
    pub fn current(&self, claims: &Claims) -> Result<Principal, AuthError> {
        let as_signed = || Principal { id: claims.sub.clone(), name: claims.name.clone(), role: claims.role, uid: claims.uid };
        if claims.kind == TokenKind::Job {
            return Ok(as_signed());
        }
        match &self.users {
            None if claims.iat_ms < self.signed_out_ms.load(std::sync::atomic::Ordering::Relaxed) => Err(AuthError::BadToken),
            None => Ok(as_signed()),
            Some(users) => {
                let user = users.get(&claims.sub).map_err(|_| AuthError::BadToken)?;
                if !user.is_active {
                    return Err(AuthError::Inactive);
                }
                if claims.iat_ms < user.signed_out_ms {
                    return Err(AuthError::BadToken);
                }
                Ok(principal_of(&user))
            }
        }
    }

    /// Ends the sessions of whoever `claims` name: their account's in users mode, every session
    /// in secret and `none` modes (they have one identity). Blocks (SQLite, a file).
    pub fn sign_out(&self, claims: &Claims) -> Result<(), AuthError> {
        if let Some(users) = &self.users {
            return users.sign_out(&claims.sub).map(drop);
        }
        let now = crate::model::now_ms();
        self.signed_out_ms.store(now, std::sync::atomic::Ordering::Relaxed);
        std::fs::write(&self.signed_out_file, now.to_string()).map_err(|e| AuthError::File { path: self.signed_out_file.clone(), message: e.to_string() })
    }

    /// Users mode: an API token's account. Blocks.
    pub fn api_token(&self, token: &str) -> Result<Principal, AuthError> {
        Ok(principal_of(&self.users()?.token_user(token, "api")?))
    }

    /// Users mode: checks e-mail and password; blocks (argon2).
    pub fn login(&self, email: &str, password: &str) -> Result<User, AuthError> {
        self.users()?.login(email, password)
    }

    pub fn register(&self, new: NewUser) -> Result<User, AuthError> {
        if !self.config.allow_register {
            return Err(AuthError::RegistrationClosed);
        }
        self.users()?.create(new, false)
    }

    /// An access token and a refresh token for the account.
    pub fn tokens_for(&self, user: &User) -> Result<(Issued, String), AuthError> {
        let access = self.issue(&principal_of(user), TokenKind::Access);
        let expires = crate::model::now_ms() + u64::try_from(self.config.refresh_ttl.as_millis()).unwrap_or(u64::MAX);
        let (refresh, _) = self.users()?.issue_token(&user.id, "refresh", "refresh", Some(expires))?;
        Ok((access, refresh))
    }

    /// Trades a refresh token for a new pair; the old refresh token stops working.
    pub fn refresh(&self, refresh: &str) -> Result<(User, Issued, String), AuthError> {
        let users = self.users()?;
        let user = users.token_user(refresh, "refresh")?;
        users.revoke(refresh)?;
        let (access, refresh) = self.tokens_for(&user)?;
        Ok((user, access, refresh))
    }
}

/// The file's first line, or a new value written with mode 0600 when it does not exist.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file_error = |e: std::io::Error| AuthError::File { path: path.to_path_buf(), message: e.to_string() };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(AuthError::File { path: path.to_path_buf(), message: "is empty; delete it to have a new one made".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(file_error)?;
            file.write_all(format!("{value}\n").as_bytes()).map_err(file_error)?;
            Ok(value)
        }
        Err(e) => Err(file_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_mode_generates_once_and_sessions_follow_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("gantry.db");
        let config = AuthConfig { mode: AuthMode::Secret, ..AuthConfig::default() };
        let owner = Principal::unix(0, "root", Role::Admin);
        let (first, notice) = Authority::open(config.clone(), owner.clone(), false, dir.path(), &db).expect("open");
        let line = notice.expect("a generated secret is shown");
        let secret = std::fs::read_to_string(dir.path().join(SECRET_FILE)).expect("kept").trim().to_string();
        assert!(line.contains(&secret));
        assert!(matches!(first.check_secret("nope"), Err(AuthError::BadSecret)));
        let admin = first.check_secret(&secret).expect("right secret");
        let session = first.issue(&admin, TokenKind::Session);

        // The next start reads it and says nothing; its sessions stay valid.
        let (second, notice) = Authority::open(config.clone(), owner.clone(), false, dir.path(), &db).expect("reopen");
        assert!(notice.is_none());
        assert_eq!(second.verify(&session.token).expect("still valid").role, Role::Admin);

        // A configured secret replaces it, and the old sessions end.
        let (third, _) = Authority::open(AuthConfig { secret: Some("another one".into()), ..config }, owner, false, dir.path(), &db).expect("open");
        assert!(matches!(third.verify(&session.token), Err(AuthError::BadToken)));
    }
}
