//! Single sign-on: who a verified provider identity signs in as. An
//! identity already linked signs in its account; a new one is linked to
//! the account with its email only when the provider verified that email,
//! its domain is allowed and the account's own email is verified (an admin
//! made it, not sign-up), or gets an account of its own when the provider
//! creates accounts. Admin rights follow the provider's groups on
//! every sign-in. Every outcome is an audit event (`sso_sign_in`,
//! `sso_link`, `sso_refused`).

pub mod oidc;

use std::net::IpAddr;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::auth::password;
use crate::config::OidcProvider;
use crate::db::models::user_identities::{self, UserIdentity};
use crate::db::models::users::{self, User};
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::service::accounts::{self, EmailOrigin};
use crate::service::events::{self, Event, EventKind, Severity};
use crate::service::tokens;
use crate::service::users::{self as admin_users, Actor, Change};
use crate::service::AppState;

pub use oidc::{Pending, Providers, Refused, VerifiedIdentity};

/// The account a verified identity signs in as, or why it may not.
pub async fn sign_in(
    state: &AppState,
    provider: &OidcProvider,
    identity: VerifiedIdentity,
    ip: IpAddr,
) -> Result<Result<User, Refused>, AppError> {
    // A new account needs a password hash (of a random password nobody
    // knows): bcrypt runs before the transaction, only when one may be made.
    let hash = if provider.create_accounts && may_need_account(state, provider, &identity).await? {
        let cost = state.config.bcrypt_cost;
        let random = accounts_random_password();
        Some(accounts::bcrypt(state, move || password::hash_password(&random, cost)).await??)
    } else {
        None
    };
    let provider = provider.clone();
    state
        .run(move |conn, cx| {
            conn.transaction(|conn| {
                let now = Utc::now();
                let ip = ip.to_string();
                let outcome = match resolve(conn, &provider, &identity, hash.as_deref(), &ip, now)? {
                    Ok(o) => o,
                    Err(refused) => return Ok(Err(refused)),
                };
                let mut user = outcome.user;
                let mut role_note = serde_json::Value::Null;
                if !provider.admin_groups.is_empty() {
                    let admin = identity
                        .groups
                        .iter()
                        .any(|g| provider.admin_groups.contains(g));
                    let role = if admin { Role::Admin } else { Role::User };
                    if role != user.role {
                        let actor = Actor::sso(&provider.id, &ip);
                        match admin_users::apply(conn, &cx.config, &actor, user.id, &Change::SetRole(role), now) {
                            Ok((changed, revoked)) => {
                                tokens::announce(conn, &cx.realtime, &revoked);
                                role_note = json!({ "from": user.role.as_str(), "to": changed.role.as_str() });
                                user = changed;
                            }
                            Err(AppError::Conflict { code: "last_admin", .. }) => {
                                tracing::warn!(provider = %provider.id, "kept the last enabled admin an admin although the provider no longer lists an admin group");
                                role_note = json!({ "kept": "admin", "why": "last_admin" });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                events::record(
                    conn,
                    Event::new(EventKind::SsoSignIn, Severity::Low, Some(&ip))
                        .user(user.id)
                        .details(json!({
                            "provider": provider.id,
                            "linked": outcome.linked,
                            "created": outcome.created,
                            "role": role_note,
                        })),
                )?;
                Ok(Ok(user))
            })
        })
        .await
}

/// A random password for an account made by single sign-on: its hash
/// fills the column, and nobody ever knows the password.
fn accounts_random_password() -> SecretString {
    admin_users::generated_password()
}

/// Whether signing this identity in might create an account (no link, no
/// account with its email yet). Re-checked inside the transaction.
async fn may_need_account(
    state: &AppState,
    provider: &OidcProvider,
    identity: &VerifiedIdentity,
) -> Result<bool, AppError> {
    let (provider_id, subject, email) = (
        provider.id.clone(),
        identity.subject.clone(),
        identity.email.clone(),
    );
    state
        .run(move |conn, _| {
            if user_identities::exists(conn, &provider_id, &subject)? {
                return Ok(false);
            }
            Ok(match email {
                Some(email) => users::find_by_email(conn, &email)?.is_none(),
                None => false,
            })
        })
        .await
}

/// The account an identity signs in, once linked or created.
struct Outcome {
    user: User,
    /// Linked by this sign-in.
    linked: bool,
    /// Created by this sign-in.
    created: bool,
}

/// Finds, links or creates the identity's account, inside the caller's
/// transaction.
fn resolve(
    conn: &mut crate::db::Db<'_>,
    provider: &OidcProvider,
    identity: &VerifiedIdentity,
    hash: Option<&str>,
    ip: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Result<Outcome, Refused>, AppError> {
    let email = identity.email.as_deref().map(str::trim);
    let domain_ok = email.is_some_and(|e| provider.domain_allowed(e));
    if let Some(linked) = user_identities::find_for_update(conn, &provider.id, &identity.subject)? {
        let user = users::lock(conn, linked.user_id)?;
        if user.disabled_at.is_some() {
            return Ok(Err(disabled()));
        }
        // The domain rule holds on every sign-in, not only the first.
        if !provider.allowed_domains.is_empty() && !domain_ok {
            return Ok(Err(domain_refused()));
        }
        user_identities::touch(conn, linked.id, now)?;
        return Ok(Ok(Outcome {
            user,
            linked: false,
            created: false,
        }));
    }
    let Some(email) = email.filter(|e| !e.is_empty()) else {
        return Ok(Err(Refused::forbidden(
            "no_email",
            "The provider did not share your email address, so this sign-in cannot be matched to an account. Ask your administrator to add the `email` scope.",
        )));
    };
    if !identity.email_verified {
        return Ok(Err(Refused::forbidden(
            "email_unverified",
            "The provider has not verified your email address, so it cannot sign you in here. Verify it with the provider first, then try again.",
        )));
    }
    if !domain_ok {
        return Ok(Err(domain_refused()));
    }
    let (user, created) = match users::find_by_email(conn, email)? {
        Some(found) => {
            let user = users::lock(conn, found.id)?;
            if user.disabled_at.is_some() {
                return Ok(Err(disabled()));
            }
            // Whoever signed up typed this email unchecked: linking would
            // hand the provider's person an account someone else may hold
            // the password of.
            if !user.email_verified {
                return Ok(Err(Refused::forbidden(
                    "account_email_unverified",
                    "An EnvShield account with this email address already exists, but its email address was never verified, so this sign-in cannot be linked to it. Sign in to that account with its password, or ask an administrator.",
                )));
            }
            (user, false)
        }
        None if provider.create_accounts => {
            let Ok(parsed) = Email::parse(email) else {
                return Ok(Err(Refused::forbidden(
                    "invalid_email",
                    "The email address the provider shared is not one an account can use.",
                )));
            };
            let Some(hash) = hash else {
                // The account appeared or vanished between the two looks.
                return Err(AppError::conflict(
                    "sso_retry",
                    "Your sign-in crossed another one for the same person. Start again from the sign-in page.",
                ));
            };
            let user =
                accounts::insert_user(conn, &parsed, hash, Role::User, EmailOrigin::Vouched)?;
            admin_users::record_created(conn, &Actor::sso(&provider.id, ip), &user)?;
            (user, true)
        }
        None => {
            return Ok(Err(Refused::forbidden(
                "no_account",
                "There is no EnvShield account for this email address. Ask an administrator to create one, then sign in again.",
            )))
        }
    };
    user_identities::insert(
        conn,
        &UserIdentity {
            id: Uuid::new_v4(),
            provider: provider.id.clone(),
            subject: identity.subject.clone(),
            user_id: user.id,
            email_at_link: email.to_owned(),
            created_at: now,
            last_sign_in_at: Some(now),
        },
    )?;
    events::record(
        conn,
        Event::new(EventKind::SsoLink, Severity::Medium, Some(ip))
            .user(user.id)
            .details(json!({
                "provider": provider.id,
                "subject": identity.subject,
                "email": email,
                "created": created,
            })),
    )?;
    Ok(Ok(Outcome {
        user,
        linked: true,
        created,
    }))
}

fn disabled() -> Refused {
    Refused::forbidden(
        "account_disabled",
        "This account is disabled. Ask an administrator if you need it back.",
    )
}

fn domain_refused() -> Refused {
    Refused::forbidden(
        "domain_not_allowed",
        "Your email address is not on a domain allowed to sign in here. Use your work account, or ask your administrator.",
    )
}

/// Records a refused provider sign-in (`sso_refused`, with its reason).
pub async fn record_refused(
    state: &AppState,
    provider: &str,
    reason: &'static str,
    ip: IpAddr,
) -> Result<(), AppError> {
    let provider = provider.to_owned();
    state
        .run(move |conn, _| {
            let ip = ip.to_string();
            events::record(
                conn,
                Event::new(EventKind::SsoRefused, Severity::Medium, Some(&ip))
                    .details(json!({ "provider": provider, "reason": reason })),
            )?;
            conn.after_commit(move || crate::metrics::sso_refused(reason));
            Ok(())
        })
        .await
}
