//! The start page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::auth::extractors::current_user;
use crate::auth::session::TypedSession;
use crate::routes::pages::auth::see_other;
use crate::routes::pages::{render, PageError};
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    email: String,
    csrf_token: String,
}

/// `GET /`: who is signed in, or on to the sign-in form.
pub async fn home(
    session: actix_session::Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let Some(user) = current_user(&session, &state).await? else {
        return Ok(see_other("/login"));
    };
    render(
        StatusCode::OK,
        &HomePage {
            email: user.email,
            csrf_token: session.csrf_token()?,
        },
    )
}
