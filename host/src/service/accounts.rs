//! Who is calling: credentials checked against the mode in force, the logins of seed 001 (one
//! secret) and seed 002 (accounts), API tokens, and account administration. Password hashing and
//! account lookups block, so they run off the async threads.

use super::{off_thread, Service, ServiceError};
use crate::auth::limiter::Attempter;
use crate::auth::{AuthError, AuthMode, Issued, NewUser, Profile, TokenInfo, TokenKind, User};
use crate::model::{Principal, Role, Usage};
use std::net::IpAddr;

/// What a request presented, as the HTTP layer found it.
#[derive(Clone, Debug)]
pub enum Credential {
    None,
    /// `Authorization: Bearer …`: a JWT, or an API token `gty_…`.
    Bearer(String),
    /// The session cookie a login set. A request that changes something on its strength must
    /// prove it comes from a page of this server: `same_origin`, or the session's CSRF token.
    Cookie { token: String, csrf_header: Option<String>, same_origin: bool },
    /// The federation master's key (`gtm_…`) with the Unix user and role it acts for.
    Master { key: String, user: Option<String>, role: Option<String> },
}

/// Whether a request made with a session cookie comes from a page of this server: its own
/// `Origin`, or the session's CSRF token.
fn from_this_server(claims: &crate::auth::Claims, csrf_header: Option<&str>, same_origin: bool) -> bool {
    same_origin || csrf_header.is_some_and(|h| !claims.csrf.is_empty() && h == claims.csrf)
}

/// Seed 002's login: a session (and its CSRF token) for the browser, and the bearer tokens for
/// scripts.
pub struct LoginReply {
    pub session: Issued,
    pub access: Issued,
    pub refresh: String,
}

impl Service {
    pub fn auth_mode(&self) -> AuthMode {
        self.auth.mode()
    }

    /// A caller on the Unix socket, by the uid the kernel gave: root, the daemon's own user and
    /// members of `auth.admin_group` are admins; on a system daemon every other local user may
    /// use it for their own work; any other daemon is its user's alone.
    pub async fn unix_caller(&self, uid: Option<u32>) -> Result<Principal, ServiceError> {
        let uid = uid.ok_or_else(|| ServiceError::Forbidden("the kernel did not say who is calling on this socket".into()))?;
        let (owner, system) = (self.auth.owner().clone(), self.auth.system());
        let admin_group = self.auth.config().admin_group.clone();
        let account = self.accounts.by_uid(uid).await.ok();
        let name = account.as_ref().map_or_else(|| format!("uid{uid}"), |a| a.name.clone());
        let in_admin_group = match (account, admin_group) {
            (Some(account), Some(group)) => off_thread(move || Ok::<_, ServiceError>(crate::unix::users::group_gid(&group).is_ok_and(|gid| account.in_group(gid)))).await?,
            _ => false,
        };
        let role = if uid == 0 || Some(uid) == owner.uid || in_admin_group {
            Role::Admin
        } else if system {
            Role::User
        } else {
            return Err(ServiceError::Forbidden(format!("this gantry daemon belongs to {}; {name} (uid {uid}) may not use it", owner.name)));
        };
        Ok(Principal::unix(uid, name, role))
    }

    /// Whose rights a file read for `who` has: their Unix user's, or the daemon's for an admin
    /// without a Unix identity. Anyone else may have no file read for them.
    pub(super) async fn reader(&self, who: &Principal) -> Result<Option<crate::unix::Account>, ServiceError> {
        match who.uid {
            Some(uid) => self.accounts.by_uid(uid).await.map(Some).map_err(|e| ServiceError::Forbidden(format!("reading files as {}: {e}", who.name))),
            None if who.role == Role::Admin => Ok(None),
            None => Err(ServiceError::Forbidden(format!("{} is not bound to a Unix user, so gantry reads no files for it", who.name))),
        }
    }

    /// A text file read with `who`'s rights (see [`Service::reader`]).
    pub(super) async fn read_as(&self, who: &Principal, file: std::path::PathBuf, max_bytes: u64) -> Result<String, ServiceError> {
        super::runs::read_as(self.reader(who).await?, file, max_bytes).await
    }

    /// The caller behind `credential`. `changes` says whether the request changes something,
    /// which a cookie alone may not do from a foreign page.
    pub async fn authenticate(&self, credential: Credential, changes: bool) -> Result<Principal, ServiceError> {
        let claims = match credential {
            Credential::Master { key, user, role } => return self.vouched(&key, user, role.as_deref()).await,
            Credential::None if self.auth.mode() == AuthMode::None => return Err(AuthError::NoLocalToken.into()),
            Credential::None => return Err(AuthError::NoCredentials.into()),
            // Mode `none`'s local token, as it is kept in the state directory.
            Credential::Bearer(token) if self.auth.mode() == AuthMode::None && !token.contains('.') => return Ok(self.auth.check_secret(&token).map_err(|_| AuthError::BadToken)?),
            Credential::Bearer(token) if token.starts_with("gty_") => {
                let auth = self.auth.clone();
                return off_thread(move || auth.api_token(&token)).await;
            }
            Credential::Bearer(token) => self.auth.verify(&token)?,
            Credential::Cookie { token, csrf_header, same_origin } => {
                let claims = self.auth.verify(&token)?;
                if changes && !from_this_server(&claims, csrf_header.as_deref(), same_origin) {
                    return Err(AuthError::Csrf.into());
                }
                claims
            }
        };
        if self.auth.mode() == AuthMode::Users {
            let auth = self.auth.clone();
            return off_thread(move || auth.current(&claims)).await;
        }
        Ok(self.auth.current(&claims)?)
    }

    /// A caller the federation master vouches for (see [`crate::federation::forward`]): with this
    /// start's key, a Unix user of this machine; on a system daemon any but root, on a daemon of
    /// one user only that user (every job there runs as them, whoever submits it). A user at
    /// most, a viewer unless the master says `user`.
    async fn vouched(&self, key: &str, user: Option<String>, role: Option<&str>) -> Result<Principal, ServiceError> {
        let ours = self.master_key.as_deref().ok_or(AuthError::BadToken)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(ours.as_bytes(), key.as_bytes())) {
            return Err(AuthError::BadToken.into());
        }
        let user = user.filter(|u| !u.is_empty()).ok_or_else(|| ServiceError::Forbidden(format!("the federation master named no user to act for ({} header)", crate::federation::forward::USER_HEADER)))?;
        let role = if role == Some(Role::User.as_str()) { Role::User } else { Role::Viewer };
        let (owner, system) = (self.auth.owner().clone(), self.auth.system());
        off_thread(move || {
            let account = crate::unix::Account::by_name(&user).map_err(|_| ServiceError::Forbidden(format!("{user} is not a Unix user on this node, so its master may not act for them here")))?;
            if system && account.uid == 0 {
                return Err(ServiceError::Forbidden("the federation master may not act as root on a node".into()));
            }
            if !system && owner.uid != Some(account.uid) {
                return Err(ServiceError::Forbidden(format!("this node's daemon belongs to {}; its master may act here only for them", owner.name)));
            }
            Ok(Principal::unix(account.uid, account.name, role))
        })
        .await
    }

    /// Counts a login attempt against its address and the account it names before anything is
    /// checked (refusing one over the limit), and gives the count back unless the credentials
    /// were wrong.
    async fn limited<T>(&self, addr: IpAddr, account: Option<&str>, attempt: impl std::future::Future<Output = Result<T, ServiceError>>) -> Result<T, ServiceError> {
        let mut who = vec![Attempter::Address(addr)];
        who.extend(account.map(|name| Attempter::Account(name.trim().to_lowercase())));
        self.auth.limiter.begin(&who).map_err(AuthError::RateLimited)?;
        let result = attempt.await;
        if !matches!(&result, Err(ServiceError::Auth(AuthError::BadCredentials | AuthError::BadSecret))) {
            self.auth.limiter.give_back(&who);
        }
        result
    }

    /// Password hashing (argon2: 19 MiB and tens of milliseconds each) on the few threads kept
    /// for it: a flood of registrations or logins waits its turn instead of taking the daemon's
    /// memory (each thread that ever hashed keeps an allocator arena of that size).
    async fn hashing<T, E>(&self, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        E: Into<ServiceError> + Send + 'static,
    {
        self.hashing.run(work).await.map_err(|_| ServiceError::Internal("the password-hashing threads are gone".into()))?.map_err(Into::into)
    }

    /// Seed 001's login: the secret, or (users mode) an account's e-mail and password.
    pub async fn login(&self, addr: IpAddr, password: String, username: Option<String>) -> Result<Issued, ServiceError> {
        let account = username.clone();
        self.limited(addr, account.as_deref(), async {
            let who = match self.auth.mode() {
                AuthMode::None | AuthMode::Secret => self.auth.check_secret(&password)?,
                AuthMode::Users => {
                    let email = username.ok_or_else(|| crate::model::FieldError::new("username", "this server has accounts; give the e-mail"))?;
                    let auth = self.auth.clone();
                    let user = self.hashing(move || auth.login(&email, &password)).await?;
                    Principal::account(user.id.clone(), user.email.clone(), user.role)
                }
            };
            Ok(self.auth.issue(&who, TokenKind::Session))
        })
        .await
    }

    /// Seed 002's form login: a session for the browser, an access and a refresh token.
    pub async fn jwt_login(&self, addr: IpAddr, username: String, password: String) -> Result<LoginReply, ServiceError> {
        let auth = self.auth.clone();
        let account = username.clone();
        let (user, access, refresh) = self
            .limited(addr, Some(&account), self.hashing(move || {
                let user = auth.login(&username, &password)?;
                let (access, refresh) = auth.tokens_for(&user)?;
                Ok::<_, AuthError>((user, access, refresh))
            }))
            .await?;
        let session = self.auth.issue(&Principal::account(user.id, user.email, user.role), TokenKind::Session);
        Ok(LoginReply { session, access, refresh })
    }

    /// Trades a refresh token for a new pair; the old one stops working.
    pub async fn refresh(&self, token: String) -> Result<(Issued, String), ServiceError> {
        let auth = self.auth.clone();
        let (_, access, refresh) = off_thread(move || auth.refresh(&token)).await?;
        Ok((access, refresh))
    }

    /// Signs out whoever the credential names (see [`crate::auth::Authority::sign_out`]): every
    /// session and access token issued before now stops working. Nothing happens for a
    /// credential that is not valid, a job's token, or a cookie sent from a page elsewhere.
    pub async fn sign_out(&self, credential: Credential) -> Result<(), ServiceError> {
        let (token, cookie) = match credential {
            Credential::Bearer(token) => (token, None),
            Credential::Cookie { token, csrf_header, same_origin } => (token, Some((csrf_header, same_origin))),
            Credential::None | Credential::Master { .. } => return Ok(()),
        };
        let Ok(claims) = self.auth.verify(&token) else { return Ok(()) };
        let foreign = cookie.is_some_and(|(csrf, same_origin)| !from_this_server(&claims, csrf.as_deref(), same_origin));
        if foreign || claims.kind == TokenKind::Job {
            return Ok(());
        }
        let auth = self.auth.clone();
        off_thread(move || auth.sign_out(&claims)).await
    }

    pub async fn revoke_refresh(&self, token: String) -> Result<(), ServiceError> {
        let auth = self.auth.clone();
        off_thread(move || auth.users()?.revoke(&token).map(drop)).await
    }

    pub async fn register(&self, new: NewUser) -> Result<User, ServiceError> {
        let auth = self.auth.clone();
        self.hashing(move || auth.register(new)).await
    }

    /// The caller's account (users mode) and what their jobs used.
    pub async fn me(&self, who: &Principal) -> Result<(Option<User>, Usage), ServiceError> {
        let usage = self.scheduler.usage(who.name.clone()).await?;
        if self.auth.mode() != AuthMode::Users {
            return Ok((None, usage));
        }
        let (auth, id) = (self.auth.clone(), who.id.clone());
        Ok((Some(off_thread(move || auth.users()?.get(&id)).await?), usage))
    }

    /// `who`'s caps, holdings and recent use (an admin may ask for another user's).
    pub async fn quota(&self, who: &Principal, user: Option<String>) -> Result<crate::model::QuotaStatus, ServiceError> {
        let name = match user {
            Some(name) if name != who.name && who.role != Role::Admin => return Err(ServiceError::Forbidden(format!("{} may see only their own quota", who.name))),
            Some(name) => name,
            None => who.name.clone(),
        };
        let lookup = name.clone();
        let groups = off_thread(move || Ok::<_, ServiceError>(crate::unix::Account::by_name(&lookup).map(|a| a.groups).unwrap_or_default())).await?;
        Ok(self.scheduler.quota(name, groups).await?)
    }

    pub async fn update_me(&self, who: &Principal, profile: Profile) -> Result<User, ServiceError> {
        let (auth, id) = (self.auth.clone(), who.id.clone());
        self.hashing(move || auth.users()?.update(&id, profile)).await
    }

    pub async fn tokens(&self, who: &Principal) -> Result<Vec<TokenInfo>, ServiceError> {
        let (auth, id) = (self.auth.clone(), who.id.clone());
        off_thread(move || auth.users()?.tokens(&id, "api")).await
    }

    /// A new API token; the token itself is shown only in this answer.
    pub async fn create_token(&self, who: &Principal, name: String) -> Result<(String, TokenInfo), ServiceError> {
        let (auth, id) = (self.auth.clone(), who.id.clone());
        off_thread(move || auth.users()?.issue_token(&id, "api", &name, None)).await
    }

    pub async fn delete_token(&self, who: &Principal, token: String) -> Result<(), ServiceError> {
        let (auth, id, shown) = (self.auth.clone(), who.id.clone(), token.clone());
        match off_thread(move || auth.users()?.delete_token(&id, &token)).await? {
            true => Ok(()),
            false => Err(ServiceError::NotFound(format!("no token {shown} of yours"))),
        }
    }

    pub async fn users(&self) -> Result<Vec<User>, ServiceError> {
        let auth = self.auth.clone();
        off_thread(move || auth.users()?.list()).await
    }

    pub async fn create_user(&self, new: NewUser) -> Result<User, ServiceError> {
        let auth = self.auth.clone();
        self.hashing(move || auth.users()?.create(new, true)).await
    }

    /// An admin's change to an account; a Unix user to bind it to must exist.
    pub async fn update_user(&self, id: String, role: Option<Role>, active: Option<bool>, unix_user: Option<String>) -> Result<User, ServiceError> {
        let auth = self.auth.clone();
        off_thread(move || {
            if let Some(name) = unix_user.as_deref().filter(|n| !n.is_empty()) {
                crate::unix::Account::by_name(name).map_err(|e| crate::model::FieldError::new("unix_user", e.to_string()))?;
            }
            Ok::<_, ServiceError>(auth.users()?.change(&id, role, active, unix_user)?)
        })
        .await
    }
}
