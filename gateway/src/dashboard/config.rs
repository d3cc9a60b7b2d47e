//! The `[dashboard]` section: who may log in, with which role, and how sessions behave.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a dashboard user may do. Each role may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything, personal data masked.
    Viewer,
    /// Also retries and replays dead letters, pauses partners, acknowledges alerts.
    Operator,
    /// Also sees personal data unmasked (each view audited).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Viewer => "只读 viewer",
            Self::Operator => "运维 operator",
            Self::Admin => "管理员 admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub role: Role,
    /// Argon2 PHC string (`hotline-gateway hash-password` makes one).
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Users by login name.
    #[serde(default)]
    pub users: BTreeMap<String, UserConfig>,
    /// A session ends this long after login.
    #[serde(default = "session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Failed logins in a row before a user is locked out …
    #[serde(default = "max_failures")]
    pub max_failures: u32,
    /// … for this long.
    #[serde(default = "lockout", with = "humantime_serde")]
    pub lockout: Duration,
    /// Mark cookies `Secure` (sent over HTTPS only). Turn off only for plain-HTTP set-ups such
    /// as the demo.
    #[serde(default = "secure_cookies")]
    pub secure_cookies: bool,
    /// How often the live pages are refreshed.
    #[serde(default = "live_interval", with = "humantime_serde")]
    pub live_interval: Duration,
}

fn session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}
fn max_failures() -> u32 {
    5
}
fn lockout() -> Duration {
    Duration::from_secs(15 * 60)
}
fn secure_cookies() -> bool {
    true
}
fn live_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            users: BTreeMap::new(),
            session_ttl: session_ttl(),
            max_failures: max_failures(),
            lockout: lockout(),
            secure_cookies: secure_cookies(),
            live_interval: live_interval(),
        }
    }
}

impl DashboardConfig {
    /// Problems as (key, message).
    pub fn check(&self, bad: &mut impl FnMut(String, String)) {
        for (name, user) in &self.users {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_whitespace) {
                bad(
                    format!("dashboard.users.{name}"),
                    "user names are 1 to 64 characters without spaces".into(),
                );
            }
            if let Err(e) = argon2::PasswordHash::new(&user.password_hash) {
                bad(
                    format!("dashboard.users.{name}.password_hash"),
                    format!(
                        "not an Argon2 PHC string ({e}); make one with `hotline-gateway hash-password`"
                    ),
                );
            }
        }
        if self.max_failures == 0 {
            bad("dashboard.max_failures".into(), "must be at least 1".into());
        }
        if self.session_ttl.is_zero() {
            bad("dashboard.session_ttl".into(), "must be positive".into());
        }
        if self.live_interval < Duration::from_millis(200) {
            bad(
                "dashboard.live_interval".into(),
                "must be at least 200ms".into(),
            );
        }
    }
}

/// Hashes a password for `[dashboard.users.<name>] password_hash` (Argon2id, default cost).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher;
    let hash: argon2::PasswordHash =
        argon2::Argon2::default().hash_password(password.as_bytes())?;
    Ok(hash.to_string())
}
