//! `envshield tokens list` and `envshield tokens revoke <id>`.

use chrono::Utc;
use envshield_api_types::{TokenStatus, TokenSummary};
use uuid::Uuid;

use super::context::Context;
use super::credentials::{SavedSignIn, TokenSource};
use crate::cli::TokensCommand;
use crate::error::CliError;
use crate::output::{relative, table};
use crate::text::one_line;

/// Runs `envshield tokens [list|revoke]`; no subcommand lists.
pub fn run(ctx: &Context, command: Option<&TokensCommand>) -> Result<(), CliError> {
    match command {
        None => list(ctx, false),
        Some(TokensCommand::List { all }) => list(ctx, *all),
        Some(TokensCommand::Revoke { id }) => revoke(ctx, *id),
    }
}

fn list(ctx: &Context, all: bool) -> Result<(), CliError> {
    let config = ctx.load_config()?;
    let mut creds = ctx.credentials(&config)?;
    let client = ctx.client_for(&creds)?;
    let list = ctx
        .call(&mut creds, &client, |c, token| c.list_tokens(token, all))
        .map_err(|e| ctx.call_failed(&creds, e))?;

    if ctx.out.is_json() {
        ctx.out.json_line(&list);
        return Ok(());
    }
    if list.tokens.is_empty() {
        ctx.out.result("No tokens.");
        return Ok(());
    }
    ctx.out.result(&render(&list.tokens, Utc::now()));
    Ok(())
}

/// The token table. An OWNER column appears when tokens of several people
/// are listed (admins); `*` marks the token in use.
fn render(tokens: &[TokenSummary], now: chrono::DateTime<Utc>) -> String {
    let owners = tokens
        .iter()
        .map(|t| &t.user_email)
        .collect::<std::collections::BTreeSet<_>>();
    let show_owner = owners.len() > 1;
    let mut headers = vec![
        "",
        "ID",
        "NAME",
        "TOKEN",
        "SCOPES",
        "STATUS",
        "LAST USED",
        "EXPIRES",
    ];
    if show_owner {
        headers.insert(2, "OWNER");
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let mut row = vec![
                if t.current { "*" } else { "" }.to_string(),
                t.id.to_string(),
                one_line(&t.name),
                one_line(&t.hint),
                if t.scopes.is_empty() {
                    "-".into()
                } else {
                    one_line(&t.scopes.join(","))
                },
                match t.status {
                    TokenStatus::Active => "active",
                    TokenStatus::Expired => "expired",
                    TokenStatus::Revoked => "revoked",
                }
                .to_string(),
                t.last_used_at
                    .map_or_else(|| "never".into(), |at| relative(at, now)),
                t.expires_at
                    .map_or_else(|| "never".into(), |at| at.format("%Y-%m-%d").to_string()),
            ];
            if show_owner {
                row.insert(2, one_line(&t.user_email));
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

fn revoke(ctx: &Context, id: Uuid) -> Result<(), CliError> {
    let config = ctx.load_config()?;
    let mut creds = ctx.credentials(&config)?;
    let client = ctx.client_for(&creds)?;
    ctx.call(&mut creds, &client, |c, token| c.revoke_token(token, id))
        .map_err(|e| ctx.call_failed(&creds, e))?;

    // Revoking the profile's own token leaves it useless here: forget it
    // (with its refresh token). `creds` is the pair in use after any
    // refresh.
    let own = creds.source == TokenSource::Config && creds.token_id == Some(id);
    let mut removed_locally = false;
    if own {
        ctx.forget_sign_in(&ctx.profile, &SavedSignIn::used_by(&creds))?;
        removed_locally = true;
    }

    if ctx.out.is_json() {
        ctx.out.json_line(&serde_json::json!({
            "revoked": id,
            "removedLocally": removed_locally,
        }));
    } else {
        ctx.out.result(&format!("Revoked token {id}."));
        if removed_locally {
            ctx.out.result(&format!(
                "It was the token of profile '{}', so it was removed from this machine too; run `envshield login` to sign in again.",
                ctx.profile
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn summary(email: &str, current: bool) -> TokenSummary {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        TokenSummary {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            user_email: email.into(),
            name: "laptop".into(),
            hint: "esh_…a1B2".into(),
            scopes: vec!["read".into(), "write".into()],
            created_at: now,
            last_used_at: None,
            expires_at: Some(now + chrono::Duration::days(30)),
            revoked_at: None,
            status: TokenStatus::Active,
            current,
            dpop_bound: false,
        }
    }

    #[test]
    fn table_marks_the_current_token_and_hides_owner_for_one_person() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let text = render(&[summary("a@x", true), summary("a@x", false)], now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("   ID"), "{text}");
        assert!(!lines[0].contains("OWNER"));
        assert!(lines[1].starts_with("*  00000000-"), "{text}");
        assert!(
            lines[1].contains("read,write  active  never      2025-01-31"),
            "{text}"
        );
    }

    #[test]
    fn table_shows_owner_for_several_people() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let text = render(&[summary("a@x", true), summary("b@x", false)], now);
        assert!(text.lines().next().unwrap_or_default().contains("OWNER"));
        assert!(text.contains("b@x"));
    }
}
