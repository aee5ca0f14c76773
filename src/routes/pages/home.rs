//! The start page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::auth::session::TypedSession;
use crate::routes::pages::{render, viewer_or_sign_in, Nav, PageError};
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Option<Nav>,
    email: String,
    is_admin: bool,
}

/// `GET /`: who is signed in and where to go, or on to the sign-in form.
pub async fn home(
    session: actix_session::Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = TypedSession(session);
    let viewer = match viewer_or_sign_in(&session, &state, "/").await? {
        Ok(v) => v,
        Err(_) => return Ok(super::auth::see_other("/login")),
    };
    render(
        StatusCode::OK,
        &HomePage {
            nav: viewer.nav(),
            is_admin: viewer.user.is_admin(),
            email: viewer.user.email,
        },
    )
}
