//! Who is calling, and whose jobs that caller may see and change.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Submits jobs and runs, and sees and changes only their own jobs.
    User,
    /// Everything, including configuration, plugins and other users' jobs.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// Whoever is calling, once authenticated.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The Unix user whose rights the caller has: known from the socket (`SO_PEERCRED`), or the
    /// daemon's owner behind its local token, or the Unix user a web account is bound to.
    /// `None`: a login with no Unix identity (a secret, an unbound account).
    pub uid: Option<u32>,
}

impl Principal {
    /// A caller known by login only.
    pub fn account(id: impl Into<String>, name: impl Into<String>, role: Role) -> Principal {
        Principal { id: id.into(), name: name.into(), role, uid: None }
    }

    /// A local Unix user, by uid and login name.
    pub fn unix(uid: u32, name: impl Into<String>, role: Role) -> Principal {
        Principal { id: format!("unix:{uid}"), name: name.into(), role, uid: Some(uid) }
    }

    /// The jobs this caller may see and change: users only their own, everyone else all of them
    /// (viewers' routes only read).
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::User => Scope::Owner(self.name.clone()),
            Role::Viewer | Role::Admin => Scope::All,
        }
    }
}

/// Whose jobs a request may touch. The scheduler checks it in the same step as the action, so an
/// ownership check and the change it guards can't be separated by another request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Owner(String),
}

impl Scope {
    pub fn allows(&self, owner: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Owner(name) => owner == Some(name.as_str()),
        }
    }
}
