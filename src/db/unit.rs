//! A unit of work on one connection, and what must happen only once its
//! changes are committed (a log line for an audit event, a cache told that
//! tokens were revoked): never for changes that were rolled back.

use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::PgConnection;

use super::models::notice_outbox::Channels;

/// Work to run once the changes it describes are committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

/// A connection lent to one unit of work. It dereferences to the
/// `PgConnection`, so every model function takes it; its own
/// [`Db::transaction`] keeps track of what is committed.
pub struct Db<'c> {
    conn: &'c mut PgConnection,
    /// Transactions open through [`Db::transaction`].
    depth: usize,
    /// Registered inside an open transaction, waiting for its commit.
    pending: Vec<AfterCommit>,
    /// Where security notices go; `None` when they are off.
    notices: Option<Arc<Channels>>,
}

impl<'c> Db<'c> {
    /// Wraps a connection with no transaction open.
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self {
            conn,
            depth: 0,
            pending: Vec::new(),
            notices: None,
        }
    }

    /// Wraps a connection whose security events also queue notices on
    /// `notices` (see [`crate::service::notices`]).
    pub fn with_notices(conn: &'c mut PgConnection, notices: Option<Arc<Channels>>) -> Self {
        Self {
            notices,
            ..Self::new(conn)
        }
    }

    /// Where security notices go, if anywhere.
    pub fn notices(&self) -> Option<&Arc<Channels>> {
        self.notices.as_ref()
    }

    /// Runs `f` in a transaction (a savepoint when one is open), committing
    /// on `Ok` and rolling back on `Err`, like Diesel's. What `f` registered
    /// with [`Db::after_commit`] runs when the outermost transaction commits,
    /// and is dropped if the work it belongs to is rolled back.
    pub fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        AnsiTransactionManager::begin_transaction(self.conn)?;
        let mark = self.pending.len();
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        match result {
            Ok(value) => match AnsiTransactionManager::commit_transaction(self.conn) {
                Ok(()) => {
                    if self.depth == 0 {
                        self.pending.drain(..).for_each(|done| done());
                    }
                    Ok(value)
                }
                Err(e) => {
                    self.pending.truncate(mark);
                    Err(e.into())
                }
            },
            Err(user_error) => {
                self.pending.truncate(mark);
                match AnsiTransactionManager::rollback_transaction(self.conn) {
                    Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => {
                        Err(user_error)
                    }
                    Err(rollback_error) => Err(rollback_error.into()),
                }
            }
        }
    }

    /// Runs `done` once the current changes are committed: now when no
    /// transaction is open (a single statement commits by itself), else at
    /// the outermost commit, and never if they are rolled back.
    pub fn after_commit(&mut self, done: impl FnOnce() + Send + 'static) {
        if self.depth == 0 {
            done();
        } else {
            self.pending.push(Box::new(done));
        }
    }
}

impl std::ops::Deref for Db<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
    }
}

impl std::ops::DerefMut for Db<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
    }
}
