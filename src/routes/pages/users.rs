//! `/admin/users`: find accounts, create one, disable and enable, change
//! role, set a new password, remove passkeys (admins only). Every change is
//! confirmed on its own page first and is an audit event.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::db::models::users::User;
use crate::domain::{Email, Role};
use crate::error::AppError;
use crate::routes::extract::{
    admin_only, csrf_only_form, page_form, Admin, ClientIp, SignedInForm, Viewer,
};
use crate::routes::pages::{render, see_other, utc, Nav, PageError, Pager};
use crate::service::users::{self, Actor, Change, PAGE_SIZE};
use crate::service::AppState;
use crate::service::{accounts, passkeys};

const USERS_PATH: &str = "/admin/users";

/// An account as the admin pages show it, and whether it has passkeys.
pub struct UserRow(User, bool);

impl UserRow {
    fn id(&self) -> String {
        self.0.id.to_string()
    }

    fn email(&self) -> &str {
        &self.0.email
    }

    fn role(&self) -> &'static str {
        self.0.role.as_str()
    }

    fn created(&self) -> String {
        utc(self.0.created_at)
    }

    fn enabled(&self) -> bool {
        self.0.disabled_at.is_none()
    }

    /// `active` or `disabled` (also the badge's CSS modifier).
    fn status(&self) -> &'static str {
        if self.enabled() {
            "active"
        } else {
            "disabled"
        }
    }

    /// The actions that change something, for the row's links.
    fn actions(&self) -> Vec<Action> {
        let mut actions = vec![if self.enabled() {
            Action::Disable
        } else {
            Action::Enable
        }];
        actions.push(if self.0.is_admin() {
            Action::MakeUser
        } else {
            Action::MakeAdmin
        });
        actions.push(Action::ResetPassword);
        if self.1 {
            actions.push(Action::RemovePasskeys);
        }
        actions
    }
}

/// What an admin can do to an account, each with its own confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Disable: sessions end, tokens are revoked.
    Disable,
    /// Enable again.
    Enable,
    /// Give the admin role.
    MakeAdmin,
    /// Take the admin role away.
    MakeUser,
    /// Set a generated password, shown once.
    ResetPassword,
    /// Remove every passkey (recovery of a lost device).
    RemovePasskeys,
}

impl Action {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "make-admin" => Self::MakeAdmin,
            "make-user" => Self::MakeUser,
            "reset-password" => Self::ResetPassword,
            "remove-passkeys" => Self::RemovePasskeys,
            _ => return None,
        })
    }

    fn slug(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::MakeAdmin => "make-admin",
            Self::MakeUser => "make-user",
            Self::ResetPassword => "reset-password",
            Self::RemovePasskeys => "remove-passkeys",
        }
    }

    /// The link and button text.
    fn label(self) -> &'static str {
        match self {
            Self::Disable => "Disable",
            Self::Enable => "Enable",
            Self::MakeAdmin => "Make admin",
            Self::MakeUser => "Make user",
            Self::ResetPassword => "Set a new password",
            Self::RemovePasskeys => "Remove passkeys",
        }
    }

    /// What happens, for the confirmation page.
    fn consequence(self) -> &'static str {
        match self {
            Self::Disable => "The account can no longer sign in. Every browser session ends at once and every API and refresh token it holds is revoked. Enabling it later does not bring the tokens back.",
            Self::Enable => "The account can sign in again. Tokens revoked when it was disabled stay revoked.",
            Self::MakeAdmin => "The account can use the admin pages: every account's tokens, the security events and this page.",
            Self::MakeUser => "The account loses the admin pages. Tokens and refresh tokens with scopes only admins may hold are revoked.",
            Self::ResetPassword => "A new password is generated and shown to you once, to hand over. The old password stops working and every browser session of the account ends.",
            Self::RemovePasskeys => "Every passkey of the account is removed: none of them can sign in or confirm an approval any more. The account signs in with its password or company sign-in, and can add new passkeys. Sessions and tokens are not touched.",
        }
    }

    /// Whether the button is styled as dangerous.
    fn dangerous(self) -> bool {
        matches!(
            self,
            Self::Disable | Self::MakeUser | Self::ResetPassword | Self::RemovePasskeys
        )
    }

    fn notice(self) -> &'static str {
        match self {
            Self::Disable => "Account disabled: its sessions ended and its tokens were revoked.",
            Self::Enable => "Account enabled: it can sign in again.",
            Self::MakeAdmin => "The account is an admin now.",
            Self::MakeUser => "The account is a user now.",
            Self::ResetPassword => "New password set.",
            Self::RemovePasskeys => "The account's passkeys were removed.",
        }
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    nav: Option<Nav>,
    csrf_token: String,
    users: Vec<UserRow>,
    search: String,
    pager: Pager,
    notice: Option<&'static str>,
    error: Option<String>,
    new_email: String,
}

/// Query of the account list.
#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    page: Option<String>,
    done: Option<String>,
}

async fn users_page(
    viewer: Viewer,
    state: &AppState,
    query: UsersQuery,
    error: Option<String>,
    new_email: String,
) -> Result<UsersPage, PageError> {
    let search = query.q.trim().to_owned();
    let base = match search.as_str() {
        "" => format!("{USERS_PATH}?"),
        q => format!(
            "{USERS_PATH}?{}&",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("q", q)
                .finish()
        ),
    };
    let mut pager = Pager::parse(query.page.as_deref(), PAGE_SIZE, base)?;
    let rows = pager.take(users::search(state, search.clone(), pager.number).await?);
    let with_passkeys =
        passkeys::accounts_with_passkeys(state, rows.iter().map(|u| u.id).collect()).await?;
    Ok(UsersPage {
        nav: viewer.nav(),
        csrf_token: viewer.csrf_token,
        users: rows
            .into_iter()
            .map(|u| {
                let has = with_passkeys.contains(&u.id);
                UserRow(u, has)
            })
            .collect(),
        search,
        pager,
        notice: query
            .done
            .as_deref()
            .and_then(Action::parse)
            .map(Action::notice),
        error,
        new_email,
    })
}

/// `GET /admin/users?q=&page=`.
pub async fn list_users(
    Admin(viewer): Admin,
    state: web::Data<AppState>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, PageError> {
    let page = users_page(viewer, &state, query.into_inner(), None, String::new()).await?;
    render(StatusCode::OK, &page)
}

/// The page that shows a password once.
#[derive(Template)]
#[template(path = "admin/user_password.html")]
struct PasswordShownPage {
    nav: Option<Nav>,
    user: UserRow,
    password: String,
    created: bool,
}

/// Fields of the create-account form.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

page_form!(CreateForm, back_to = USERS_PATH);

/// `POST /admin/users`: creates an account with a generated password,
/// shown on the answer once.
pub async fn create_user(
    ip: ClientIp,
    state: web::Data<AppState>,
    posted: SignedInForm<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let SignedInForm { form, viewer } = posted;
    let viewer = admin_only(viewer)?;
    let refuse = |message: String| (StatusCode::BAD_REQUEST, message);
    let parsed = Email::parse(&form.email).map_err(refuse).and_then(|email| {
        Role::parse(form.role.trim())
            .map(|role| (email, role))
            .ok_or_else(|| refuse("Choose the role user or admin.".to_owned()))
    });
    let actor = actor(&viewer, ip);
    let outcome = match parsed {
        Ok((email, role)) => match users::create(&state, actor, email, role).await {
            Ok(created) => Ok(created),
            Err(e @ AppError::Conflict { .. }) => Err((StatusCode::CONFLICT, e.public_message())),
            Err(e) => return Err(e.into()),
        },
        Err(refused) => Err(refused),
    };
    match outcome {
        Ok((user, password)) => render(
            StatusCode::OK,
            &PasswordShownPage {
                nav: viewer.nav(),
                user: UserRow(user, false),
                password: password.expose_secret().to_owned(),
                created: true,
            },
        ),
        Err((status, message)) => {
            let typed = form.email.trim().to_owned();
            let page = users_page(viewer, &state, UsersQuery::default(), Some(message), typed);
            render(status, &page.await?)
        }
    }
}

fn actor(viewer: &Viewer, ip: ClientIp) -> Actor {
    Actor {
        user_id: Some(viewer.user.id),
        ip: Some(ip.to_string()),
        via: None,
    }
}

fn parse_target(path: &(String, String)) -> Result<(Uuid, Action), PageError> {
    let not_found = |what: &str| PageError(AppError::NotFound(what.to_owned()));
    let id = Uuid::parse_str(&path.0).map_err(|_| not_found("The account"))?;
    let action = Action::parse(&path.1).ok_or_else(|| not_found("This page"))?;
    Ok((id, action))
}

#[derive(Template)]
#[template(path = "admin/user_action.html")]
struct ConfirmPage {
    nav: Option<Nav>,
    csrf_token: String,
    user: UserRow,
    action: Action,
    yourself: bool,
}

/// `GET /admin/users/{id}/{action}`: are you sure?
pub async fn confirm_form(
    Admin(viewer): Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, action) = parse_target(&path)?;
    let user = users::find(&state, id).await?;
    let has_passkeys = passkeys::count(&state, id).await? > 0;
    render(
        StatusCode::OK,
        &ConfirmPage {
            nav: viewer.nav(),
            yourself: viewer.user.id == id,
            csrf_token: viewer.csrf_token,
            user: UserRow(user, has_passkeys),
            action,
        },
    )
}

csrf_only_form!(
    /// The button of a confirmation page.
    ConfirmForm,
    back_to = USERS_PATH
);

/// `POST /admin/users/{id}/{action}`: does it.
#[tracing::instrument(name = "admin_change_account", skip_all)]
pub async fn confirm(
    ip: ClientIp,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    posted: SignedInForm<ConfirmForm>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin_only(posted.viewer)?;
    let (id, action) = parse_target(&path)?;
    let actor = actor(&viewer, ip);
    let mut password = None;
    let change = match action {
        Action::Disable => Change::Disable,
        Action::Enable => Change::Enable,
        Action::MakeAdmin => Change::SetRole(Role::Admin),
        Action::MakeUser => Change::SetRole(Role::User),
        Action::ResetPassword => {
            let fresh = users::generated_password();
            let cost = state.config.bcrypt_cost;
            let for_hash = fresh.clone();
            let hash =
                accounts::bcrypt(&state, move || accounts::hash_new_password(&for_hash, cost))
                    .await??;
            password = Some(fresh);
            Change::SetPassword(hash)
        }
        // Not a change to the account row: the passkeys service does it.
        Action::RemovePasskeys => {
            passkeys::remove_all(&state, actor, id).await?;
            return Ok(see_other(&format!("{USERS_PATH}?done={}", action.slug())));
        }
    };
    let user = users::change(&state, actor, id, change).await?;
    match password {
        Some(password) => render(
            StatusCode::OK,
            &PasswordShownPage {
                nav: viewer.nav(),
                user: UserRow(user, false),
                password: password.expose_secret().to_owned(),
                created: false,
            },
        ),
        // Acting on yourself: disabled, you are signed out; no longer an
        // admin, the admin pages are closed to you.
        None if id == viewer.user.id && action == Action::Disable => Ok(see_other("/login")),
        None if id == viewer.user.id && action == Action::MakeUser => Ok(see_other("/")),
        None => Ok(see_other(&format!("{USERS_PATH}?done={}", action.slug()))),
    }
}
