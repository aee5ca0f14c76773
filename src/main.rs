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
use envshield_server::service::accounts;
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
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
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
}

/// The database to use: `DATABASE_URL`, or the private local cluster (kept
/// alive for as long as this value lives).
struct Database {
    url: SecretString,
    _local: Option<LocalPostgres>,
}

fn open_database(config: &Config) -> anyhow::Result<Database> {
    if let Some(url) = &config.database_url {
        return Ok(Database {
            url: url.clone(),
            _local: None,
        });
    }
    let dir = config.data_dir.join("postgres");
    tracing::info!(dir = %dir.display(), "no DATABASE_URL: using the local PostgreSQL cluster");
    let local = LocalPostgres::start(&dir)?;
    local.ensure_database("envshield")?;
    Ok(Database {
        url: SecretString::from(local.url("envshield")),
        _local: Some(local),
    })
}

fn main() -> ExitCode {
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
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            match envshield_server::startup::raise_open_file_limit() {
                Ok(limit) => tracing::info!(limit, "open-file limit (one per held connection)"),
                Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
            }
            let database = open_database(&config)?;
            serve(config, database.url.clone())
            // `database` drops here, stopping a local cluster we started.
        }
        Command::Migrate => {
            let database = open_database(&config)?;
            let mut conn = connect(&database.url)?;
            let applied = db::run_migrations(&mut conn)?;
            println!("applied {applied} migration(s); the database is up to date");
            Ok(())
        }
        Command::Users {
            command: UsersCommand::Create { email, admin },
        } => {
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let password = read_password()?;
            let database = open_database(&config)?;
            let mut conn = connect(&database.url)?;
            db::run_migrations(&mut conn)?;
            let role = if admin { Role::Admin } else { Role::User };
            let user = accounts::create_user(
                &mut conn,
                &email,
                &password,
                role.as_str(),
                config.bcrypt_cost,
            )
            .map_err(|e| anyhow::anyhow!(e.public_message()))?;
            println!("created {} account {} ({})", user.role, user.email, user.id);
            Ok(())
        }
    }
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
    app.run_until_stopped().await?;
    Ok(())
}
