//! `rate_limits`: GCRA buckets shared by every instance.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Double, Nullable};

/// Takes one request from the bucket `key`, which admits `burst` at once
/// and refills one every `every`: `Ok` when admitted (and counted), else
/// how long until one would be. One statement; concurrent takers of one
/// key queue on its row.
pub fn take(
    conn: &mut PgConnection,
    key: &[u8],
    every: Duration,
    burst: u32,
) -> QueryResult<Result<(), Duration>> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Nullable<Double>)]
        wait: Option<f64>,
    }
    let every = every.as_secs_f64();
    let tolerance = every * f64::from(burst);
    let taken: Taken = diesel::sql_query(
        "WITH taken AS ( \
             INSERT INTO rate_limits AS r (key, tat) \
             VALUES ($1, now() + $2 * interval '1 second') \
             ON CONFLICT (key) DO UPDATE \
                SET tat = GREATEST(r.tat, now()) + $2 * interval '1 second' \
              WHERE GREATEST(r.tat, now()) + ($2 - $3) * interval '1 second' <= now() \
             RETURNING 1 \
         ) \
         SELECT CASE WHEN EXISTS (SELECT 1 FROM taken) THEN NULL \
                ELSE GREATEST(EXTRACT(EPOCH FROM ( \
                    (SELECT tat FROM rate_limits WHERE key = $1) \
                    + ($2 - $3) * interval '1 second' - now()))::float8, 0) \
                END AS wait",
    )
    .bind::<Bytea, _>(key)
    .bind::<Double, _>(every)
    .bind::<Double, _>(tolerance)
    .get_result(conn)?;
    Ok(match taken.wait {
        None => Ok(()),
        Some(wait) => Err(Duration::from_secs_f64(wait.max(0.0))),
    })
}

/// Deletes buckets that are full again (their arrival time has passed).
pub fn delete_full(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_limits WHERE tat < now()").execute(conn)
}
