//! Account administration: what admins do on `/admin/users` and operators
//! with `envshield-server users`. Every change is one transaction, an audit
//! event, and ends what the change takes away (sessions, tokens).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::config::Config;
use crate::crypto;
use crate::db::models::revocation::{self, Revoked};
use crate::db::models::user_sessions::{self, Ending};
use crate::db::models::users::{self, Changes, User};
use crate::db::Db;
use crate::domain::{Email, Role, Scopes};
use crate::error::AppError;
use crate::service::accounts;
use crate::service::device::policy;
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::tokens;
use crate::service::AppState;

/// Accounts per page of the admin list.
pub const PAGE_SIZE: u32 = 50;

/// Who makes a change: an admin in the browser, or an operator at the
/// server's command line.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The admin's account; `None` for an operator.
    pub user_id: Option<Uuid>,
    /// The admin's address.
    pub ip: Option<String>,
    /// Set when no person made the change: `sso:<provider>` for a change
    /// a provider sign-in made (a new account, a role from groups).
    pub via: Option<String>,
}

impl Actor {
    /// An operator running `envshield-server users ...`.
    pub fn operator() -> Self {
        Self {
            user_id: None,
            ip: None,
            via: None,
        }
    }

    /// A sign-in through the provider `provider` from `ip`.
    pub fn sso(provider: &str, ip: &str) -> Self {
        Self {
            user_id: None,
            ip: Some(ip.to_owned()),
            via: Some(format!("sso:{provider}")),
        }
    }

    /// Who made the change, as audit events name it: the admin's id,
    /// `operator`, or what made it (`sso:<provider>`).
    pub fn by(&self) -> serde_json::Value {
        match (&self.via, self.user_id) {
            (Some(via), _) => json!(via),
            (None, Some(id)) => json!(id),
            (None, None) => json!("operator"),
        }
    }
}

/// A change to an account.
#[derive(Debug, Clone)]
pub enum Change {
    /// No more sign-ins or tokens: sessions end and every token is revoked.
    Disable,
    /// Allowed to sign in again (its old tokens stay revoked).
    Enable,
    /// A new role; tokens and refresh families with scopes the new role may
    /// not hold are revoked.
    SetRole(Role),
    /// A new password (already hashed); every session ends.
    SetPassword(String),
}

fn last_admin() -> AppError {
    AppError::conflict(
        "last_admin",
        "This is the only enabled admin account. Make another account an admin first.",
    )
}

/// Applies `change` to account `target` and records it. What it revoked is
/// returned for the caller to announce once committed.
pub fn apply(
    conn: &mut Db<'_>,
    config: &Config,
    actor: &Actor,
    target: Uuid,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<(User, Revoked), AppError> {
    conn.transaction(|conn| {
        let user = users::lock(conn, target).map_err(|e| match e {
            diesel::result::Error::NotFound => AppError::NotFound("The account".to_owned()),
            other => other.into(),
        })?;
        let takes_an_admin = user.is_admin()
            && user.disabled_at.is_none()
            && matches!(change, Change::Disable | Change::SetRole(Role::User));
        if takes_an_admin && users::lock_other_enabled_admins(conn, user.id)? == 0 {
            return Err(last_admin());
        }
        let (changes, kind, details) = match change {
            Change::Disable if user.disabled_at.is_some() => return Ok((user, Revoked::default())),
            Change::Enable if user.disabled_at.is_none() => return Ok((user, Revoked::default())),
            Change::SetRole(role) if *role == user.role => return Ok((user, Revoked::default())),
            Change::Disable => (
                Changes {
                    disabled_at: Some(Some(now)),
                    ..Changes::default()
                },
                EventKind::AccountDisabled,
                json!({}),
            ),
            Change::Enable => (
                Changes {
                    disabled_at: Some(None),
                    ..Changes::default()
                },
                EventKind::AccountEnabled,
                json!({}),
            ),
            Change::SetRole(role) => (
                Changes {
                    role: Some(*role),
                    ..Changes::default()
                },
                EventKind::RoleChanged,
                json!({ "from": user.role.as_str(), "to": role.as_str() }),
            ),
            Change::SetPassword(hash) => (
                Changes {
                    password_hash: Some(hash),
                    ..Changes::default()
                },
                EventKind::PasswordReset,
                json!({}),
            ),
        };
        let updated = users::update(conn, user.id, &changes)?;
        let revoked = match change {
            Change::Disable => revocation::revoke_account_grants(conn, user.id, now, |_| false)?,
            Change::SetRole(role) => {
                revocation::revoke_account_grants(conn, user.id, now, |scopes| {
                    Scopes::parse(scopes, &config.scope_catalogue)
                        .is_ok_and(|s| policy::check_approver(config, *role, &s).is_ok())
                })?
            }
            Change::Enable | Change::SetPassword(_) => Revoked::default(),
        };
        let sessions_ended = match change {
            Change::Disable | Change::SetPassword(_) => {
                user_sessions::end(conn, user.id, Ending::All, now)?
            }
            Change::Enable | Change::SetRole(_) => 0,
        };
        let mut details = details;
        details["by"] = actor.by();
        details["sessions_ended"] = json!(sessions_ended);
        details["tokens_revoked"] = json!(revoked.tokens.len());
        details["refresh_tokens_revoked"] = json!(revoked.refresh_tokens);
        events::record(
            conn,
            Event::new(kind, Severity::Medium, actor.ip.as_deref())
                .user(user.id)
                .details(details),
        )?;
        Ok((updated, revoked))
    })
}

/// [`apply`] for a request: announces what was revoked to this instance's
/// token cache once committed.
pub async fn change(
    state: &AppState,
    actor: Actor,
    target: Uuid,
    change: Change,
) -> Result<User, AppError> {
    state
        .run(move |conn, cx| {
            let (user, revoked) = apply(conn, &cx.config, &actor, target, &change, Utc::now())?;
            tokens::announce(conn, &cx.realtime, &revoked);
            Ok(user)
        })
        .await
}

/// A fresh random password to hand over once: 128 bits, typeable.
pub fn generated_password() -> SecretString {
    SecretString::from(URL_SAFE_NO_PAD.encode(crypto::random_bytes::<16>()))
}

/// Creates an account with a generated password, shown to the admin once;
/// an admin made it, so its email counts as verified.
pub async fn create(
    state: &AppState,
    actor: Actor,
    email: Email,
    role: Role,
) -> Result<(User, SecretString), AppError> {
    let password = generated_password();
    let cost = state.config.bcrypt_cost;
    let for_hash = password.clone();
    let hash =
        accounts::bcrypt(state, move || accounts::hash_new_password(&for_hash, cost)).await??;
    let user = db_create(state, actor, email, hash, role).await?;
    Ok((user, password))
}

async fn db_create(
    state: &AppState,
    actor: Actor,
    email: Email,
    hash: String,
    role: Role,
) -> Result<User, AppError> {
    crate::db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            let user =
                accounts::insert_user(conn, &email, &hash, role, accounts::EmailOrigin::Vouched)?;
            record_created(conn, &actor, &user)?;
            Ok(user)
        })
    })
    .await
}

/// Records that `actor` created `user`.
pub fn record_created(conn: &mut Db<'_>, actor: &Actor, user: &User) -> Result<(), AppError> {
    events::record(
        conn,
        Event::new(
            EventKind::AccountCreated,
            Severity::Medium,
            actor.ip.as_deref(),
        )
        .user(user.id)
        .details(json!({ "by": actor.by(), "role": user.role.as_str() })),
    )?;
    Ok(())
}

/// One page of accounts whose email contains `search`.
pub async fn search(state: &AppState, search: String, page: u32) -> Result<Vec<User>, AppError> {
    let limit = i64::from(PAGE_SIZE) + 1;
    let offset = i64::from(page.saturating_sub(1)) * i64::from(PAGE_SIZE);
    crate::db::run(&state.pool, move |conn| {
        Ok(users::search(conn, search.trim(), limit, offset)?)
    })
    .await
}

/// The account with this id.
pub async fn find(state: &AppState, id: Uuid) -> Result<User, AppError> {
    crate::db::run(&state.pool, move |conn| {
        users::find(conn, id)?.ok_or_else(|| AppError::NotFound("The account".to_owned()))
    })
    .await
}
