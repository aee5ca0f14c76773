//! The real `envshield-server` process on its own local PostgreSQL: killed
//! with SIGKILL between approval and pickup, restarted, stopped with SIGTERM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Client;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// A fresh data folder under `target/`.
fn data_dir(name: &str) -> PathBuf {
    crate::helpers::fresh_target_dir(&format!("envshield-test-process-{name}"))
}

fn server_command(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envshield-server"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ENVSHIELD_DATA_DIR", dir)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("APP_URL", format!("http://127.0.0.1:{port}"))
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Starts the server and waits until it answers (bounded).
async fn serve(dir: &Path, port: u16) -> Child {
    let mut child = server_command(dir, port).spawn().unwrap();
    let client = Client::new();
    for _ in 0..600 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
        {
            if r.status() == 200 {
                return child;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready");
}

/// Waits (bounded) for the process to exit; its exit status.
async fn exited(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not exit");
}

/// SIGTERM, and a clean exit.
async fn stop_cleanly(server: &mut Child) {
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(exited(server).await.success(), "a clean exit");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_approval_and_pickup_it_delivers_once_after_restart() {
    let dir = data_dir("kill");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = serve(&dir, port).await;

    // An account, made while the server runs (the command shares its cluster).
    let mut create = server_command(&dir, port)
        .args(["users", "create", "--email", "dev@example.com"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    assert!(create.wait().unwrap().success());

    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login_page = browser.get(format!("{base}/login")).send().await.unwrap();
    let html = login_page.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let r = browser
        .post(format!("{base}/login"))
        .form(&[
            ("email", "dev@example.com"),
            ("password", PASSWORD),
            ("csrf_token", csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cli = Client::new();
    let started: Value = cli
        .post(format!("{base}/api/v1/cli/auth/device/start"))
        .json(&json!({ "tokenName": "laptop" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let approved = browser
        .post(format!("{base}/api/v1/cli/auth/device/complete"))
        .header("Origin", &base)
        .json(&json!({ "userCode": started["userCode"], "decision": "approve" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);

    // SIGKILL: no clean stop, its PostgreSQL left running.
    first.kill().unwrap();
    first.wait().unwrap();
    let pid_file = dir.join("postgres/pgdata/postmaster.pid");
    assert!(
        pid_file.exists(),
        "the killed server's PostgreSQL is still running"
    );

    let mut second = serve(&dir, port).await;
    let poll = |cli: Client| {
        let url = format!("{base}/api/v1/cli/auth/device/poll");
        let body = json!({ "deviceCode": started["deviceCode"] });
        async move {
            let r = cli.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = poll(cli.clone()).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("approved")),
        "{body}"
    );
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = poll(cli.clone()).await;
    assert_eq!(status, 410, "delivered exactly once");
    let whoami = cli
        .get(format!("{base}/api/v1/cli/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);

    // SIGTERM: a clean stop, and the PostgreSQL it took over stops too.
    stop_cleanly(&mut second).await;
    assert!(!pid_file.exists(), "no PostgreSQL left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_started_the_cluster_leaves_it_to_a_server_that_came_up_meanwhile() {
    let dir = data_dir("command-first");
    let port = free_port();
    let pid_file = dir.join("postgres/pgdata/postmaster.pid");

    // The command starts the cluster, migrates, and waits for the password.
    let mut create = server_command(&dir, port)
        .args(["users", "create", "--email", "ops@example.com"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut password = create.stdin.take().unwrap();
    for _ in 0..600 {
        let status = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if status.lines().nth(7).is_some_and(|s| s.trim() == "ready") {
            break;
        }
        assert!(create.try_wait().unwrap().is_none(), "the command exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A server comes up on the running cluster, then the command finishes.
    let mut server = serve(&dir, port).await;
    password.write_all(PASSWORD.as_bytes()).unwrap();
    drop(password);
    assert!(exited(&mut create).await.success());

    // The server still has its database.
    let r = Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/cli/auth/device/start"
        ))
        .json(&json!({ "tokenName": "laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the cluster outlived the command");
    assert!(pid_file.exists());

    // The server stops the cluster it took over when it stops.
    stop_cleanly(&mut server).await;
    assert!(!pid_file.exists(), "no PostgreSQL left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
