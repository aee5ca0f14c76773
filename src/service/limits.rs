//! Rate limits shared by every instance, kept in PostgreSQL (one statement
//! per check, a GCRA bucket per key): the ones that bound guessing — code
//! entry and sign-in per client network, sign-in per account, code entry
//! per account — so N instances do not multiply an attacker's budget by N.
//! Starts and polls stay per instance, in memory (`rate_limit.rs`).

use std::net::IpAddr;
use std::time::Duration;

use crate::crypto::sha256;
use crate::db::{self, models::rate_limits};
use crate::error::AppError;
use crate::rate_limit::{Limit, Refused};
use crate::service::AppState;

/// An account's sign-in attempts from all networks together may reach this
/// many times the per-network limit before they are slowed.
const ACCOUNT_CEILING_NETWORKS: u32 = 5;
/// The longest an attempt over the account's ceiling is held.
const MAX_SIGN_IN_SLOWDOWN: Duration = Duration::from_secs(10);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The bucket of `subject` under the limit `name`: a digest, so no address
/// or email is stored in clear.
fn bucket(name: &str, subject: &str) -> [u8; 32] {
    sha256(format!("{name}\0{subject}").as_bytes())
}

/// Takes one from a bucket admitting `n` per `period` (0: no limit).
async fn take(
    state: &AppState,
    key: [u8; 32],
    n: u32,
    period: Duration,
) -> Result<Result<(), Duration>, AppError> {
    if n == 0 {
        return Ok(Ok(()));
    }
    let every = period / n;
    db::run(&state.pool, move |conn| {
        Ok(rate_limits::take(conn, &key, every, n)?)
    })
    .await
}

/// Whole seconds to wait, at least one.
fn seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A client's use of a shared per-network limit ([`Limit::is_shared`]):
/// 429 with the wait when its network used it up.
pub async fn check_client(state: &AppState, limit: Limit, ip: IpAddr) -> Result<(), AppError> {
    let limits = &state.config.rate_limits;
    let (name, n) = match limit {
        Limit::Complete => ("complete", limits.complete_per_min),
        Limit::Login => ("login", limits.login_per_min),
        Limit::Start | Limit::Poll => return Ok(()),
    };
    let network = state.limiters.key(ip).to_string();
    match take(state, bucket(name, &network), n, MINUTE).await? {
        Ok(()) => Ok(()),
        Err(wait) => Err(AppError::RateLimited {
            retry_after_secs: state.limiters.refuse(Refused::of(limit), seconds(wait)),
        }),
    }
}

/// How the sign-in limits name the account an email address is typed for:
/// trimmed, in Unicode lower case. Sign-in accepts only spellings with the
/// same key as the account's address (see [`same_account`]).
pub fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether `typed` is a spelling of the account address `stored` that the
/// sign-in limits count as that account. PostgreSQL's `lower()` may fold
/// more than Unicode lower case (a libc locale maps `İ` to `i`), so the
/// look-up can find an account under a spelling with another key: such a
/// spelling signs nobody in, or each variant would get limits of its own.
pub fn same_account(typed: &str, stored: &str) -> bool {
    account_key(typed) == account_key(stored)
}

/// Whether another sign-in attempt for this account (email, any case) from
/// this client's network may go ahead: 429 when this network used up the
/// account's attempts (a hard limit, so failures elsewhere never lock the
/// owner out), else how long to hold the attempt first: when attempts from
/// every network together pass the account's ceiling, each is slowed,
/// never refused.
pub async fn check_sign_in(
    state: &AppState,
    email: &str,
    ip: IpAddr,
) -> Result<Duration, AppError> {
    let account = account_key(email);
    let per_network = state.config.rate_limits.login_per_account_per_hour;
    let network = state.limiters.key(ip).to_string();
    let key = bucket("sign-in account network", &format!("{account}\0{network}"));
    if let Err(wait) = take(state, key, per_network, HOUR).await? {
        return Err(AppError::RateLimited {
            retry_after_secs: state.limiters.refuse(Refused::LoginAccount, seconds(wait)),
        });
    }
    let ceiling = per_network.saturating_mul(ACCOUNT_CEILING_NETWORKS);
    let key = bucket("sign-in account", &account);
    Ok(match take(state, key, ceiling, HOUR).await? {
        Ok(()) => Duration::ZERO,
        Err(wait) => wait.min(MAX_SIGN_IN_SLOWDOWN),
    })
}

/// One look-up or decision of a user code by this signed-in account, from
/// whichever address: 429 past `RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR`.
pub async fn check_code_entry(state: &AppState, account: uuid::Uuid) -> Result<(), AppError> {
    let n = state.config.rate_limits.code_entry_per_account_per_hour;
    match take(
        state,
        bucket("code entry account", &account.to_string()),
        n,
        HOUR,
    )
    .await?
    {
        Ok(()) => Ok(()),
        Err(wait) => Err(AppError::RateLimited {
            retry_after_secs: state
                .limiters
                .refuse(Refused::CodeEntryAccount, seconds(wait)),
        }),
    }
}

/// Deletes buckets that are full again.
pub async fn purge(state: &AppState) -> Result<usize, AppError> {
    db::run(&state.pool, |conn| Ok(rate_limits::delete_full(conn)?)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spellings_with_the_accounts_key_name_it() {
        assert!(same_account(" Kim@Example.COM ", "kim@example.com"));
        assert!(same_account("émile@example.com", "Émile@example.com"));
        // A libc PostgreSQL locale finds kim@ for kİm@; the limits would
        // count it as another account, so it names none.
        assert_ne!(
            account_key("kİm@example.com"),
            account_key("kim@example.com")
        );
        assert!(!same_account("kİm@example.com", "kim@example.com"));
    }
}
