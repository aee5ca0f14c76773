//! The `LISTEN` connection honours `sslmode` like the pool: against a
//! PostgreSQL that refuses connections without TLS, it connects with
//! `require` and with `verify-full` against the right root, and refuses a
//! server whose certificate another root signed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use envshield_server::realtime::{listen, Realtime};
use pg_local::{LocalPostgres, Options};

/// A CA, and a server certificate it signed for `localhost` and 127.0.0.1.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package `openssl`) runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subject = format!("/CN={ca}");
        let (keyout, out) = (format!("{ca}.key"), format!("{ca}.crt"));
        args.extend([subject.as_str(), "-keyout", &keyout, "-out", &out]);
        args.extend(key);
        openssl(&args);
    }
    let mut req = vec!["req", "-subj", "/CN=localhost", "-keyout", "server.key"];
    req.extend(["-out", "server.csr"]);
    req.extend(key);
    openssl(&req);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster listening on 127.0.0.1 that only accepts TLS there.
fn tls_only_cluster(dir: &Path, port: u16) -> LocalPostgres {
    // First start: initdb, socket only; then the certificates go into the
    // data folder, owned by the server's user as PostgreSQL insists.
    let mut first = LocalPostgres::start(dir).expect("local cluster starts");
    first.stop().unwrap();
    let pgdata = dir.join("pgdata");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certificates(&certs);
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&pgdata).unwrap();
    for name in ["server.crt", "server.key"] {
        let target = pgdata.join(name);
        std::fs::copy(certs.join(name), &target).unwrap();
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        pgdata.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let settings = [("listen_addresses", "127.0.0.1"), ("ssl", "on")];
    LocalPostgres::start_with(
        dir,
        &Options {
            port,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Options::default()
        },
    )
    .expect("the TLS cluster starts")
}

/// Whether a listener on `url` is listening within a few seconds.
async fn listens(url: String) -> bool {
    let realtime = Arc::new(Realtime::default());
    let task = tokio::spawn(listen(url, realtime.clone()));
    let mut listening = false;
    for _ in 0..50 {
        if realtime.is_listening() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    listening
}

fn cluster_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("envshield-test-pg-tls");
    // A fresh cluster each run: the port and certificates are new.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn the_listener_connects_over_tls_as_sslmode_says() {
    let dir = cluster_dir();
    let port = free_port();
    let mut pg = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || tls_only_cluster(&dir, port)
    })
    .await
    .unwrap();
    let certs = dir.join("certs");
    let ca = certs.join("ca.crt").display().to_string();
    let other = certs.join("other-ca.crt").display().to_string();
    let url =
        |host: &str, query: &str| format!("postgres://envshield@{host}:{port}/postgres?{query}");

    assert!(
        !listens(url("127.0.0.1", "sslmode=disable")).await,
        "the server refuses connections without TLS"
    );
    assert!(listens(url("127.0.0.1", "sslmode=require")).await);
    assert!(listens(url("127.0.0.1", "")).await, "prefer, as libpq");
    assert!(
        listens(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await
    );
    assert!(
        listens(url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await
    );
    assert!(
        !listens(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}")
        ))
        .await,
        "a certificate from another root is refused"
    );
    assert!(
        !listens(url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={other}")
        ))
        .await,
        "verify-ca checks the chain too"
    );
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap()
        .unwrap();
}
