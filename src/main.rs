//! `envshield-server`: parse arguments, load configuration, run.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pg_local::LocalPostgres;
use secrecy::{ExposeSecret, SecretString};

use envshield_server::config::Config;
use envshield_server::db;
use envshield_server::domain::{Email, Role};
use envshield_server::healthcheck;
use envshield_server::service::accounts;
use envshield_server::service::users::{self, Actor, Change};
use envshield_server::startup::Application;
use envshield_server::telemetry;

/// jemalloc: about a tenth less memory than the system allocator with
/// 10,000 long-polls held (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EnvShield Auth server: browser-approved CLI sign-in and API tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations and serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document of the JSON API and exit (also served
    /// at /api/v1/openapi.json).
    Openapi,
    /// Exit 0 when this instance answers `/health/ready` on `BIND_ADDR`
    /// (a container health check that needs no curl).
    Healthcheck {
        /// Seconds to wait for the connection, and again for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Server keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print three fresh keys as `TOKEN_SEAL_KEY=…`, `CODE_HMAC_KEY=…`,
    /// `SESSION_KEY=…` lines (base64), for an env file or a Secret.
    Generate,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create an account; the password is read from standard input.
    Create {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts: email, role, status, creation time, id.
    List {
        /// Only accounts whose email contains this.
        #[arg(long, default_value = "")]
        search: String,
    },
    /// Disable an account: its sessions end and every token is revoked.
    Disable {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
    /// Change an account's role; tokens the new role may not hold are revoked.
    SetRole {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// `user` or `admin`.
        #[arg(long)]
        role: String,
    },
    /// Set a new password, read from standard input; every session ends.
    ResetPassword {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
    /// Remove every passkey of an account (a lost device); it signs in
    /// with its password or company sign-in and can add new ones.
    RemovePasskeys {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
}

/// The database to use: `DATABASE_URL`, or the private local cluster (kept
/// alive for as long as this value lives).
struct Database {
    url: SecretString,
    /// Dropped first: a cluster this process owns is stopped...
    local: Option<LocalPostgres>,
    /// ...before the serving lock is released.
    serving: Option<std::fs::File>,
    /// A one-off command's data folder: see the `Drop`.
    command_in: Option<std::path::PathBuf>,
}

impl Drop for Database {
    /// A one-off command that started the cluster stops it, unless a server
    /// came up on it meanwhile (the server holds `serve.lock`, and took the
    /// running cluster over as its own). Otherwise the command holds the
    /// lock until the cluster has stopped.
    fn drop(&mut self) {
        let (Some(dir), Some(local)) = (&self.command_in, &mut self.local) else {
            return;
        };
        match try_serving_lock(dir) {
            Ok(Some(lock)) => self.serving = Some(lock),
            Ok(None) => local.keep_running(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether a server uses the local PostgreSQL; leaving it running");
                local.keep_running();
            }
        }
    }
}

/// Who opens the local cluster: the server, or a one-off command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opener {
    Server,
    Command,
}

fn open_database(config: &Config, opener: Opener) -> anyhow::Result<Database> {
    if let Some(url) = &config.database_url {
        return Ok(Database {
            url: url.clone(),
            local: None,
            serving: None,
            command_in: None,
        });
    }
    let dir = config.data_dir.join("postgres");
    tracing::info!(dir = %dir.display(), "no DATABASE_URL: using the local PostgreSQL cluster");
    // A server holds `serve.lock` while it runs. A server that gets it knows
    // no other server runs here, so a cluster found running was left by a
    // killed predecessor: it takes it over, and stops it when it stops. A
    // one-off command (`users`, `migrate`) shares a running cluster.
    let serving = match opener {
        Opener::Server => serving_lock(&config.data_dir)?,
        Opener::Command => None,
    };
    let local = LocalPostgres::start_with(
        &dir,
        &pg_local::Options {
            take_over_running: serving.is_some(),
            ..pg_local::Options::default()
        },
    )?;
    local.ensure_database("envshield")?;
    Ok(Database {
        url: SecretString::from(local.url("envshield")),
        local: Some(local),
        serving,
        command_in: (opener == Opener::Command).then(|| config.data_dir.clone()),
    })
}

/// The data folder's serving lock, if no other server holds it.
fn serving_lock(data_dir: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    let lock = try_serving_lock(data_dir)?;
    if lock.is_none() {
        tracing::warn!("another server uses this data folder; sharing its PostgreSQL");
    }
    Ok(lock)
}

/// The data folder's serving lock, or `None` while a server holds it.
fn try_serving_lock(data_dir: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
        }
    }
}

fn main() -> ExitCode {
    // `.env` first, so that its RUST_LOG and LOG_FORMAT shape the logs too;
    // a malformed file is reported when the configuration is read.
    let _ = dotenvy::dotenv();
    telemetry::init_subscriber();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // These need no configuration (and must not create a data folder).
    match cli.command {
        Some(Command::Openapi) => {
            println!("{}", envshield_server::routes::openapi::document());
            return Ok(());
        }
        Some(Command::Keys {
            command: KeysCommand::Generate,
        }) => {
            print!("{}", envshield_server::config::generate_env_lines());
            return Ok(());
        }
        Some(Command::Healthcheck { timeout }) => {
            let bind = Config::bind_addr_from_env()?;
            let target = healthcheck::target(&bind).map_err(anyhow::Error::msg)?;
            healthcheck::check_ready(target, std::time::Duration::from_secs(timeout))
                .map_err(anyhow::Error::msg)?;
            println!("ready: {target}/health/ready answered 200");
            return Ok(());
        }
        _ => {}
    }
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi | Command::Keys { .. } | Command::Healthcheck { .. } => Ok(()),
        Command::Serve => {
            match envshield_server::startup::raise_open_file_limit() {
                Ok(limit) => tracing::info!(limit, "open-file limit (one per held connection)"),
                Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
            }
            let database = open_database(&config, Opener::Server)?;
            serve(config, database.url.clone())
            // `database` drops here, stopping a local cluster we started.
        }
        Command::Migrate => {
            let database = open_database(&config, Opener::Command)?;
            let mut conn = connect(&database.url)?;
            let applied = db::run_migrations(&mut conn)?;
            println!("applied {applied} migration(s); the database is up to date");
            Ok(())
        }
        Command::Users { command } => {
            let database = open_database(&config, Opener::Command)?;
            let mut conn = connect(&database.url)?;
            db::run_migrations(&mut conn)?;
            manage_users(&config, &mut conn, command)
        }
    }
}

/// Where the security events of an account command queue their notices:
/// the running servers' workers send them.
fn notice_channels(config: &Config) -> Option<std::sync::Arc<db::models::notice_outbox::Channels>> {
    envshield_server::service::notices::channels(&config.notices)
}

/// Runs an account command on `conn` and prints what it did.
fn manage_users(
    config: &Config,
    conn: &mut diesel::PgConnection,
    command: UsersCommand,
) -> anyhow::Result<()> {
    let public = |e: envshield_server::error::AppError| anyhow::anyhow!(e.public_message());
    let (email, change) = match command {
        UsersCommand::Create { email, admin } => {
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = read_password()?;
            let role = if admin { Role::Admin } else { Role::User };
            let user =
                accounts::create_user(conn, &email, &password, role.as_str(), config.bcrypt_cost)
                    .map_err(public)?;
            users::record_created(
                &mut db::Db::with_notices(conn, notice_channels(config)),
                &Actor::operator(),
                &user,
            )
            .map_err(public)?;
            println!("created {} account {} ({})", user.role, user.email, user.id);
            return Ok(());
        }
        UsersCommand::List { search } => {
            let found = db::models::users::search(conn, &search, i64::MAX, 0)?;
            println!(
                "{:<40} {:<6} {:<9} {:<17} ID",
                "EMAIL", "ROLE", "STATUS", "CREATED"
            );
            for u in &found {
                let status = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let created = u.created_at.format("%Y-%m-%d %H:%M");
                println!(
                    "{:<40} {:<6} {status:<9} {created:<17} {}",
                    u.email, u.role, u.id
                );
            }
            println!("{} account(s)", found.len());
            return Ok(());
        }
        UsersCommand::Disable { email } => (email, Change::Disable),
        UsersCommand::Enable { email } => (email, Change::Enable),
        UsersCommand::SetRole { email, role } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("the role must be `user` or `admin`"))?;
            (email, Change::SetRole(role))
        }
        UsersCommand::RemovePasskeys { email } => {
            let user = db::models::users::find_by_email(conn, email.trim())?
                .ok_or_else(|| anyhow::anyhow!("no account has the email {}", email.trim()))?;
            let removed = envshield_server::service::passkeys::remove_all_in(
                &mut db::Db::new(conn),
                &Actor::operator(),
                user.id,
            )
            .map_err(public)?;
            println!("{}: {removed} passkey(s) removed", user.email);
            return Ok(());
        }
        UsersCommand::ResetPassword { email } => {
            let password = read_password()?;
            let hash =
                accounts::hash_new_password(&password, config.bcrypt_cost).map_err(public)?;
            (email, Change::SetPassword(hash))
        }
    };
    let user = db::models::users::find_by_email(conn, email.trim())?
        .ok_or_else(|| anyhow::anyhow!("no account has the email {}", email.trim()))?;
    let (user, revoked) = users::apply(
        &mut db::Db::with_notices(conn, notice_channels(config)),
        config,
        &Actor::operator(),
        user.id,
        &change,
        chrono::Utc::now(),
    )
    .map_err(public)?;
    let status = if user.disabled_at.is_some() {
        "disabled"
    } else {
        "active"
    };
    println!(
        "{}: role {}, {status}; {} token(s) and {} refresh token(s) revoked",
        user.email,
        user.role,
        revoked.tokens.len(),
        revoked.refresh_tokens
    );
    Ok(())
}

fn connect(url: &SecretString) -> anyhow::Result<diesel::PgConnection> {
    use diesel::Connection;
    diesel::PgConnection::establish(url.expose_secret())
        .context("cannot connect to the database (check DATABASE_URL)")
}

fn read_password() -> anyhow::Result<SecretString> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input: pipe it in, e.g. `printf '%s' \"$PW\" | envshield-server users create --email you@example.com`");
    }
    Ok(SecretString::from(password))
}

#[actix_web::main]
async fn serve(config: Config, database_url: SecretString) -> anyhow::Result<()> {
    let bind = config.bind_addr.clone();
    let app_url = config.app_base();
    let app = Application::build(config, database_url).await?;
    tracing::info!(bind = %bind, port = app.port(), app_url = %app_url, "envshield-server listening");
    let stopper = app.stopper();
    actix_web::rt::spawn(async move {
        match envshield_server::startup::shutdown_signal().await {
            Ok(()) => stopper.stop().await,
            Err(e) => tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGKILL"),
        }
    });
    app.run_until_stopped().await?;
    Ok(())
}
