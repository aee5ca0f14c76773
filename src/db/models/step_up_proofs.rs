//! `step_up_proofs`: a passed step-up, good for one approval (a CLI login
//! request or an authorization request) by one account from one browser
//! session, for minutes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::step_up_proofs;
use crate::domain::StepUpMethod;

/// A proof waiting for its approval.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = step_up_proofs, check_for_backend(diesel::pg::Pg))]
pub struct StepUpProof {
    /// SHA-256 of the proof the browser holds.
    pub digest: Vec<u8>,
    /// The account that passed it.
    pub user_id: Uuid,
    /// The browser session it was passed in.
    pub user_session_id: Uuid,
    /// The CLI login request it approves, or
    pub device_session_id: Option<Uuid>,
    /// the `/oauth/authorize` request it approves (a digest).
    pub authorization_request: Option<Vec<u8>>,
    /// Passkey or password.
    pub method: StepUpMethod,
    /// When it was passed.
    pub created_at: DateTime<Utc>,
    /// After this it approves nothing.
    pub expires_at: DateTime<Utc>,
}

/// Records a passed step-up.
pub fn insert(conn: &mut PgConnection, proof: &StepUpProof) -> QueryResult<()> {
    super::insert_into(conn, step_up_proofs::table, proof)
}

/// Deletes the proof with this digest and returns it, whether or not it
/// fits (the caller checks): a proof is presented once.
pub fn take(conn: &mut PgConnection, digest: &[u8]) -> QueryResult<Option<StepUpProof>> {
    diesel::delete(step_up_proofs::table.find(digest))
        .returning(StepUpProof::as_returning())
        .get_result(conn)
        .optional()
}

/// Deletes proofs that expired before `now`.
pub fn delete_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(step_up_proofs::table.filter(step_up_proofs::expires_at.lt(now))).execute(conn)
}
