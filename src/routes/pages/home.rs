//! The start page.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

use crate::routes::extract::Viewer;
use crate::routes::pages::{render, Nav, PageError};

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Option<Nav>,
    email: String,
    is_admin: bool,
}

/// `GET /`: who is signed in and where to go, or on to the sign-in form.
pub async fn home(viewer: Viewer) -> Result<HttpResponse, PageError> {
    render(
        StatusCode::OK,
        &HomePage {
            nav: viewer.nav(),
            is_admin: viewer.user.is_admin(),
            email: viewer.user.email,
        },
    )
}
