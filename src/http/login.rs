//! Who may use the HTTP API. With `[http] token`, `Authorization: Bearer <token>` (or
//! `?access_token=`, for EventSource); with MQTT logins configured (`[auth]`), HTTP Basic with
//! the same users and passwords, reloaded with them on SIGHUP. Either is enough; everyone else
//! gets 401 with a `WWW-Authenticate` that makes a browser ask for the login. The health checks
//! stay open; `/metrics` too with `[http] metrics_public = true`; the dashboard's own files
//! need the Basic login when logins are configured (the token is the page's to give).

use super::error::ApiError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// What a request may be let in by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// The API: the token or a login.
    Api,
    /// The dashboard's files: a login (when logins are configured).
    Page,
}

pub async fn require_api(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Guarded::Api).await
}

pub async fn require_page(state: State<AppState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Guarded::Page).await
}

async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
    guarded: Guarded,
) -> Response {
    let logins = state.logins.get();
    let token = state.token.as_deref().filter(|_| guarded == Guarded::Api);
    if token.is_none() && !logins.any() {
        return next.run(request).await;
    }
    let by_token = token.is_some_and(|t| given_token(&request).as_deref() == Some(t));
    let by_login = logins.any()
        && basic(&request)
            .is_some_and(|(user, password)| logins.check(Some((&user, &password))).is_ok());
    if by_token || by_login {
        return next.run(request).await;
    }
    refused(token.is_some(), logins.any())
}

/// The bearer token, from the header or (EventSource cannot set headers) `?access_token=`.
fn given_token(request: &Request) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    from_header.or_else(|| {
        let query = axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(
            request.uri(),
        );
        query.ok().and_then(|q| q.0.get("access_token").cloned())
    })
}

/// The user and password of an `Authorization: Basic` header.
fn basic(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn refused(token: bool, logins: bool) -> Response {
    let detail = match (token, logins) {
        (true, true) => "this endpoint needs a login (HTTP Basic, the MQTT users) or `Authorization: Bearer <token>`",
        (true, false) => "this endpoint needs `Authorization: Bearer <token>` ([http] token)",
        _ => "this endpoint needs a login (HTTP Basic, the MQTT users of [auth])",
    };
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        detail: detail.into(),
    }
    .into_response();
    let challenge = match logins {
        true => "Basic realm=\"edgemq\", charset=\"UTF-8\"",
        false => "Bearer",
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}
