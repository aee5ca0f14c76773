//! Deployment: the files operators deploy with (Dockerfile, compose.yaml,
//! .env.example, deploy/kubernetes) name only variables the server reads,
//! and the real binary runs with production settings as an unprivileged
//! user on a PostgreSQL reached over TCP, as it does in a container.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use envshield_server::config::VARIABLES;
use pg_local::{LocalPostgres, Options};
use serde_yaml_ng::Value;

/// `.env.example` lines that only compose.yaml reads (to build DATABASE_URL).
const COMPOSE_ONLY: &[&str] = &["POSTGRES_PASSWORD"];

/// The user the production run uses when the tests run as root: `nobody`.
const UNPRIVILEGED: u32 = 65534;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            v.apply_merge().unwrap();
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn assert_known(names: impl IntoIterator<Item = String>, source: &str) {
    for name in names {
        assert!(
            VARIABLES.contains(&name.as_str()),
            "{source} sets {name}, which the server does not read"
        );
    }
}

/// Names an `environment:` (map or `NAME=value` list) sets.
fn compose_environment(env: &Value) -> Vec<String> {
    match env {
        Value::Mapping(m) => m.keys().map(|k| k.as_str().unwrap().to_owned()).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().split('=').next().unwrap().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn deployment_files_set_only_variables_the_server_reads() {
    // .env.example: every variable of the table, set or commented out.
    let example = read(".env.example");
    let mut set = Vec::new();
    let mut mentioned = BTreeSet::new();
    for line in example.lines() {
        let (commented, line) = match line.strip_prefix("# ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        mentioned.insert(name.to_owned());
        if !commented {
            set.push(name.to_owned());
        }
    }
    for name in VARIABLES {
        assert!(mentioned.contains(*name), ".env.example lacks {name}");
    }
    let compose = read("compose.yaml");
    for name in COMPOSE_ONLY {
        assert!(compose.contains(&format!("${{{name}")), "{name} unused");
    }
    assert_known(
        set.into_iter()
            .filter(|n| !COMPOSE_ONLY.contains(&n.as_str())),
        ".env.example",
    );

    // compose.yaml: the services running the server's image.
    let compose = &yaml_documents("compose.yaml")[0];
    let services = compose["services"].as_mapping().unwrap();
    let mut server_services = 0;
    for (name, service) in services {
        let image = service["image"].as_str().unwrap_or_default();
        if !image.starts_with("envshield-server") {
            continue;
        }
        server_services += 1;
        assert_eq!(service["env_file"].as_str(), Some(".env"), "{name:?}");
        assert_known(compose_environment(&service["environment"]), "compose.yaml");
    }
    assert_eq!(server_services, 2, "migrate and server");

    // Dockerfile: ENV lines, with their continuations.
    let dockerfile = read("Dockerfile");
    let mut env_names = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let body = if let Some(rest) = line.strip_prefix("ENV ") {
            rest
        } else if in_env {
            line
        } else {
            continue;
        };
        for word in body.split_whitespace() {
            if let Some((name, _)) = word.split_once('=') {
                env_names.push(name.to_owned());
            }
        }
        in_env = body.trim_end().ends_with('\\');
    }
    assert!(env_names.contains(&"ENVSHIELD_ENV".to_owned()));
    assert_known(env_names, "Dockerfile");

    // Kubernetes: the ConfigMap's keys and every container's env.
    let dir = repo("deploy/kubernetes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    let kustomization = &yaml_documents("deploy/kubernetes/kustomization.yaml")[0];
    let mut listed: Vec<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest");
    let mut containers = 0;
    for file in &files {
        for doc in yaml_documents(&format!("deploy/kubernetes/{file}")) {
            if doc["kind"] == "ConfigMap" {
                let data = doc["data"].as_mapping().unwrap();
                assert_known(data.keys().map(|k| k.as_str().unwrap().to_owned()), file);
            }
            let pod = &doc["spec"]["template"]["spec"];
            for c in pod["containers"].as_sequence().into_iter().flatten() {
                containers += 1;
                let env = c["env"].as_sequence().into_iter().flatten();
                assert_known(env.map(|e| e["name"].as_str().unwrap().to_owned()), file);
            }
        }
    }
    assert_eq!(containers, 2, "the server and the migration Job");
}

/// The effective user id of this process (the owner of /proc/self).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Production settings, as the image and the manifests give them.
struct Production {
    data_dir: PathBuf,
    /// A folder the server's user cannot write to, as its working directory.
    read_only: PathBuf,
    vars: Vec<(String, String)>,
}

impl Production {
    fn command(&self, args: &[&str], without: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_envshield-server"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(&self.read_only)
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in self
            .vars
            .iter()
            .filter(|(k, _)| !without.contains(&k.as_str()))
        {
            cmd.env(k, v);
        }
        if euid() == 0 {
            cmd.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
        }
        cmd
    }

    fn run(&self, args: &[&str], without: &[&str]) -> Output {
        self.command(args, without).output().unwrap()
    }
}

/// Waits (bounded) for the process to exit.
fn exited(child: &mut Child) -> ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("the server did not exit");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn production_binary_runs_unprivileged_refuses_missing_settings_and_stops_on_sigterm() {
    // A PostgreSQL reached over TCP, as a database service is.
    let pg_port = free_port();
    let cluster_dir = crate::helpers::fresh_target_dir("envshield-test-deploy-pg");
    let pg = LocalPostgres::start_with(
        &cluster_dir,
        &Options {
            port: pg_port,
            settings: vec![("listen_addresses".into(), "127.0.0.1".into())],
            ..Options::default()
        },
    )
    .expect("the TCP cluster starts");
    pg.ensure_database("envshield").unwrap();

    // Only the data folder belongs to the server's user; its working folder
    // and the binary's are not writable by it.
    let root = crate::helpers::fresh_target_dir("envshield-test-deploy");
    let data_dir = root.join("data");
    let read_only = root.join("app");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::create_dir_all(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if euid() == 0 {
        std::os::unix::fs::chown(&data_dir, Some(UNPRIVILEGED), Some(UNPRIVILEGED)).unwrap();
    }
    let port = free_port();
    let keys = envshield_server::config::generate_env_lines();
    let mut vars: Vec<(String, String)> = keys
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    for (k, v) in [
        ("ENVSHIELD_ENV", "production".to_owned()),
        ("ENVSHIELD_DATA_DIR", data_dir.display().to_string()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("APP_URL", "https://auth.example.com".to_owned()),
        (
            "DATABASE_URL",
            format!("postgres://envshield@127.0.0.1:{pg_port}/envshield?sslmode=disable"),
        ),
        ("BCRYPT_COST", "4".to_owned()),
        ("WORKERS", "1".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ] {
        vars.push((k.to_owned(), v));
    }
    let prod = Production {
        data_dir: data_dir.clone(),
        read_only,
        vars,
    };

    // A missing key or database is refused at once, naming it.
    let no_key = prod.run(&["serve"], &["SESSION_KEY"]);
    assert!(!no_key.status.success());
    assert!(
        stderr(&no_key).contains("production requires explicit keys; missing: SESSION_KEY"),
        "{}",
        stderr(&no_key)
    );
    let no_db = prod.run(&["serve"], &["DATABASE_URL"]);
    assert!(!no_db.status.success());
    assert!(
        stderr(&no_db).contains("production requires DATABASE_URL"),
        "{}",
        stderr(&no_db)
    );

    // Two migrations at once (a Job and an instance starting): each
    // migration is applied exactly once, and both succeed.
    let migrations = std::fs::read_dir(repo("migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("up.sql").exists())
        .count();
    let first = prod
        .command(&["migrate"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = prod
        .command(&["migrate"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut applied = 0;
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", stderr(&out));
        let n: usize = text
            .trim()
            .strip_prefix("applied ")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected output: {text}"));
        applied += n;
    }
    assert_eq!(applied, migrations, "each migration applied once");

    // Nothing listens yet: the health check says so.
    let before = prod.run(&["healthcheck", "--timeout", "1"], &[]);
    assert!(!before.status.success());
    assert!(
        stderr(&before).contains("nothing answers"),
        "{}",
        stderr(&before)
    );

    let log_path = root.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = prod
        .command(&["serve"], &[])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        if prod
            .run(&["healthcheck", "--timeout", "1"], &[])
            .status
            .success()
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "healthcheck never passed");
    let ready = get_json(format!("http://127.0.0.1:{port}/health/ready"));
    assert_eq!(
        ready,
        (200, serde_json::json!({ "status": "ok", "database": "ok" }))
    );
    if euid() == 0 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let ids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
        assert!(
            ids.iter().all(|id| *id == UNPRIVILEGED.to_string()),
            "{uid_line}"
        );
    }

    // SIGTERM: a clean exit, and the health check fails afterwards.
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(exited(&mut server).success(), "a clean exit");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("SIGTERM: draining held polls and stopping"),
        "{log}"
    );
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
    assert!(!prod
        .run(&["healthcheck", "--timeout", "1"], &[])
        .status
        .success());

    // Production keeps nothing on disk: the data folder is still empty.
    assert_eq!(std::fs::read_dir(&prod.data_dir).unwrap().count(), 0);
    drop(pg);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&cluster_dir);
}

/// GET `url` on a throwaway runtime: (status, JSON body).
fn get_json(url: String) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}
