//! `Db`: what is registered with `after_commit` runs once the work commits,
//! and never for work that was rolled back.

use std::sync::{Arc, Mutex};

use diesel::result::Error;
use diesel::Connection;
use envshield_server::db::Db;

use crate::helpers::spawn_app;

#[tokio::test]
async fn after_commit_runs_only_for_committed_work() {
    let app = spawn_app().await;
    let url = app.server.db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        let mut db = Db::new(&mut conn);
        let ran = Arc::new(Mutex::new(Vec::<&str>::new()));
        let note = |what: &'static str| {
            let ran = ran.clone();
            move || ran.lock().unwrap().push(what)
        };
        let seen = || ran.lock().unwrap().clone();

        db.after_commit(note("outside a transaction"));
        assert_eq!(seen(), ["outside a transaction"], "runs at once");

        let rolled_back: Result<(), Error> = db.transaction(|db| {
            db.after_commit(note("rolled back"));
            Err(Error::RollbackTransaction)
        });
        assert!(rolled_back.is_err());
        assert_eq!(seen(), ["outside a transaction"]);

        db.transaction(|db| {
            db.after_commit(note("outer"));
            let inner: Result<(), Error> = db.transaction(|db| {
                db.after_commit(note("savepoint rolled back"));
                Err(Error::RollbackTransaction)
            });
            assert!(inner.is_err());
            db.transaction(|db| {
                db.after_commit(note("savepoint released"));
                Ok::<_, Error>(())
            })?;
            assert_eq!(
                seen(),
                ["outside a transaction"],
                "nothing runs before the outermost commit"
            );
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(
            seen(),
            ["outside a transaction", "outer", "savepoint released"]
        );
    })
    .await
    .unwrap();
}
