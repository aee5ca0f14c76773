//! Extractors backed by the browser session: the viewer of a page, the
//! admin, forms with their CSRF token, the signed-in user of a JSON call,
//! code entry, and the same-origin check of cookie-authenticated JSON.

use std::future::{ready, Future, Ready};

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::session::TypedSession;
use crate::db::models::users::User;
use crate::error::AppError;
use crate::rate_limit::client_ip;
use crate::routes::html::{path_and_query, Nav, PageError};
use crate::service::device;
use crate::service::sessions::{self, SignedIn};
use crate::service::AppState;

use super::{state_of, Boxed};

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(req.get_session())))
    }
}

/// The live server-side session of this browser and its enabled account,
/// if signed in.
async fn signed_in(session: &TypedSession, state: &AppState) -> Result<Option<SignedIn>, AppError> {
    match session.secret() {
        Some(secret) => sessions::find(state, secret).await,
        None => Ok(None),
    }
}

/// The request's browser session and, once awaited, its sign-in (what the
/// extractors of a signed-in caller look up).
fn session_of(
    req: &HttpRequest,
) -> impl Future<Output = Result<(TypedSession, Option<SignedIn>), AppError>> + 'static {
    let state = state_of(req);
    let session = TypedSession(req.get_session());
    async move {
        let state = state?;
        let signed_in = signed_in(&session, &state).await?;
        Ok((session, signed_in))
    }
}

/// The future of an extractor made from the browser session and its
/// sign-in by `make`.
fn from_session<T, E>(
    req: &HttpRequest,
    make: impl FnOnce(TypedSession, Option<SignedIn>) -> Result<T, E> + 'static,
) -> Boxed<T, E>
where
    E: From<AppError>,
{
    let signed_in = session_of(req);
    Box::pin(async move {
        let (session, signed_in) = signed_in.await?;
        make(session, signed_in)
    })
}

/// The signed-in account looking at a page, with the session's CSRF token.
/// Signed out, the page answers a 303 to the sign-in form, which comes back
/// to this page afterwards.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The account.
    pub user: User,
    /// The server-side session this browser holds.
    pub session_id: Uuid,
    /// The session's CSRF token, for every form on the page.
    pub csrf_token: String,
}

impl Viewer {
    /// The navigation bar for this account.
    pub fn nav(&self) -> Option<Nav> {
        Some(Nav {
            email: self.user.email.clone(),
            is_admin: self.user.is_admin(),
            csrf_token: self.csrf_token.clone(),
        })
    }

    fn of(session: &TypedSession, signed_in: Option<SignedIn>) -> Result<Option<Self>, AppError> {
        Ok(match signed_in {
            Some(SignedIn { session_id, user }) => Some(Self {
                user,
                session_id,
                csrf_token: session.csrf_token()?,
            }),
            None => None,
        })
    }
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Boxed<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let back_to = path_and_query(req);
        let viewer = MaybeViewer::from_request(req, payload);
        Box::pin(async move { viewer.await?.require(&back_to) })
    }
}

/// A page open to everyone that shows more to a signed-in account.
#[derive(Debug, Clone)]
pub struct MaybeViewer(pub Option<Viewer>);

impl MaybeViewer {
    /// The navigation bar, when signed in.
    pub fn nav(&self) -> Option<Nav> {
        self.0.as_ref().and_then(Viewer::nav)
    }

    /// The viewer, or the sign-in redirect that comes back to `back_to`.
    pub fn require(self, back_to: &str) -> Result<Viewer, PageError> {
        self.0.ok_or_else(|| {
            PageError(AppError::SignInRequired {
                back_to: back_to.to_owned(),
            })
        })
    }
}

impl FromRequest for MaybeViewer {
    type Error = PageError;
    type Future = Boxed<Self, PageError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        from_session(req, |session, signed_in| {
            Ok(Self(Viewer::of(&session, signed_in)?))
        })
    }
}

/// The signed-in admin looking at a page: signed out, a 303 to sign in;
/// anyone else, a styled 403 page.
#[derive(Debug, Clone)]
pub struct Admin(pub Viewer);

impl FromRequest for Admin {
    type Error = PageError;
    type Future = Boxed<Self, PageError>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let viewer = Viewer::from_request(req, payload);
        Box::pin(async move { admin_only(viewer.await?).map(Self) })
    }
}

/// The viewer if it is an admin; a styled 403 page for anyone else.
pub fn admin_only(viewer: Viewer) -> Result<Viewer, PageError> {
    if viewer.user.is_admin() {
        Ok(viewer)
    } else {
        Err(PageError(AppError::forbidden(
            "admin_only",
            "This page is for admins only. Ask an admin if you need something here.",
        )))
    }
}

/// A posted page form; its `csrf_token` field is checked against the
/// session's before the handler runs (a 403 page otherwise).
pub trait PageForm: DeserializeOwned + 'static {
    /// The submitted CSRF token.
    fn csrf_token(&self) -> &str;
}

/// Implements [`PageForm`] for a form struct with a `csrf_token` field and,
/// given `back_to`, [`FormPage`] with that fixed page.
macro_rules! page_form {
    ($form:ty) => {
        impl $crate::routes::extract::PageForm for $form {
            fn csrf_token(&self) -> &str {
                &self.csrf_token
            }
        }
    };
    ($form:ty, back_to = $page:expr) => {
        page_form!($form);
        impl $crate::routes::extract::FormPage for $form {
            fn back_to(&self) -> String {
                $page.to_owned()
            }
        }
    };
}
pub(crate) use page_form;

/// Declares a page form whose only field is the CSRF token, posted from
/// the page `back_to` (a button: sign out, revoke, end a session, confirm).
macro_rules! csrf_only_form {
    ($(#[$doc:meta])* $form:ident, back_to = $page:expr) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize)]
        pub struct $form {
            #[serde(default)]
            csrf_token: String,
        }
        $crate::routes::extract::page_form!($form, back_to = $page);
    };
}
pub(crate) use csrf_only_form;

/// A page form whose CSRF token matched, and the session it matched.
pub struct CsrfForm<T> {
    /// The fields.
    pub form: T,
    /// The browser session.
    pub session: TypedSession,
}

impl<T: PageForm> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Boxed<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<T>::from_request(req, payload);
        let session = TypedSession(req.get_session());
        Box::pin(async move {
            let form = form.await?.into_inner();
            session.verify_csrf(form.csrf_token()).map_err(PageError)?;
            Ok(Self { form, session })
        })
    }
}

/// A page form posted by a signed-in account: the CSRF token is checked
/// first (a forged post learns nothing), then the sign-in, which comes back
/// to `T::back_to` when the session has ended.
pub struct SignedInForm<T> {
    /// The fields.
    pub form: T,
    /// The account posting it.
    pub viewer: Viewer,
}

/// Where a form's page lives, to come back to after signing in again.
pub trait FormPage: PageForm {
    /// The page the form was on.
    fn back_to(&self) -> String;
}

impl<T: FormPage> FromRequest for SignedInForm<T> {
    type Error = actix_web::Error;
    type Future = Boxed<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = CsrfForm::<T>::from_request(req, payload);
        let signed_in = session_of(req);
        Box::pin(async move {
            let CsrfForm { form, .. } = checked.await?;
            let (session, signed_in) = signed_in.await.map_err(PageError)?;
            let viewer = Viewer::of(&session, signed_in).map_err(PageError)?;
            let viewer = MaybeViewer(viewer).require(&form.back_to())?;
            Ok(Self { form, viewer })
        })
    }
}

/// A JSON call from a signed-in browser session: the account, and the id
/// of the server-side session; 401 otherwise.
#[derive(Debug, Clone)]
pub struct SignedInUser(pub User, pub Uuid);

impl FromRequest for SignedInUser {
    type Error = AppError;
    type Future = Boxed<Self, AppError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        from_session(req, |_, signed_in| {
            signed_in
                .map(|s| SignedInUser(s.user, s.session_id))
                .ok_or_else(|| AppError::Unauthorized {
                    code: "not_signed_in",
                    message: "Sign in at /login first.".to_owned(),
                    challenge: None,
                })
        })
    }
}

/// Who enters a user code, for the per-account cap on code entry.
pub trait CodeEntrant {
    /// The signed-in account, if any (a signed-out visitor is not counted:
    /// they are sent to sign in first).
    fn account(&self) -> Option<Uuid>;
    /// The answer past the cap: a page for pages, JSON for the API.
    fn refuse(e: AppError) -> actix_web::Error;
}

impl CodeEntrant for MaybeViewer {
    fn account(&self) -> Option<Uuid> {
        self.0.as_ref().map(|v| v.user.id)
    }

    fn refuse(e: AppError) -> actix_web::Error {
        PageError(e).into()
    }
}

impl<T> CodeEntrant for SignedInForm<T> {
    fn account(&self) -> Option<Uuid> {
        Some(self.viewer.user.id)
    }

    fn refuse(e: AppError) -> actix_web::Error {
        PageError(e).into()
    }
}

impl CodeEntrant for SignedInUser {
    fn account(&self) -> Option<Uuid> {
        Some(self.0.id)
    }

    fn refuse(e: AppError) -> actix_web::Error {
        e.into()
    }
}

/// `T`, once one user-code entry (a look-up or a decision) has been counted
/// against its account from every address together: past
/// `RATE_LIMIT_CODE_ENTRY_PER_ACCOUNT_PER_HOUR`, a 429 before the handler
/// runs.
pub struct CodeEntry<T>(pub T);

impl<T> FromRequest for CodeEntry<T>
where
    T: FromRequest + CodeEntrant + 'static,
    T::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Boxed<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let inner = T::from_request(req, payload);
        let state = state_of(req).map(|s| {
            let ip = client_ip(req, &s.config.trusted_proxies);
            (s, ip)
        });
        Box::pin(async move {
            let inner = inner.await.map_err(Into::into)?;
            if let Some(account) = inner.account() {
                let (state, ip) = state.map_err(T::refuse)?;
                device::count_code_entry(&state, account, ip)
                    .await
                    .map_err(T::refuse)?;
            }
            Ok(Self(inner))
        })
    }
}

/// A JSON call from this site's own pages: `Origin` (or, when a browser
/// omits it, `Referer`) is `APP_URL`'s origin; 403 otherwise. Cookies ride
/// along on cross-site requests, so a cookie-authenticated call needs it.
#[derive(Debug, Clone, Copy)]
pub struct SameOrigin;

impl FromRequest for SameOrigin {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state_of(req).and_then(|state| {
            let origin = state.config.app_origin();
            let headers = req.headers();
            let ok = match headers.get(header::ORIGIN) {
                Some(o) => o.to_str().is_ok_and(|o| o == origin),
                None => headers
                    .get(header::REFERER)
                    .and_then(|r| r.to_str().ok())
                    .and_then(|r| url::Url::parse(r).ok())
                    .is_some_and(|r| r.origin().ascii_serialization() == origin),
            };
            ok.then_some(SameOrigin).ok_or_else(|| {
                AppError::forbidden(
                    "cross_origin_request",
                    "This call must come from the EnvShield web page itself. Approve the request on its page instead.",
                )
            })
        }))
    }
}
