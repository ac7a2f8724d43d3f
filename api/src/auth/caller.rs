//! The [`Caller`] extractor: the verified token's (issuer, subject) as the acting user.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use plinth_domain::Actor;

use super::verify::Rejection;
use super::Auth;
use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub issuer: String,
    pub subject: String,
    /// The name and e-mail address the issuer's claim mapping gives, if the token has them.
    /// Not stored anywhere (personal data stays out of the log).
    pub name: Option<String>,
    pub email: Option<String>,
}

impl<S> FromRequestParts<S> for Caller
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// Authenticates once per request: later extractors of the same request (a typed path id,
    /// a read) find the caller in the request's extensions.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let auth = Auth::from_ref(state);
        let caller = authenticate(parts, &auth).await?;
        if let Some(limits) = &auth.limits {
            limits
                .check(caller.actor.user_id.as_str())
                .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
        }
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, auth: &Auth) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("missing `Authorization: Bearer <token>`".into())
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
        })?;
    let verified =
        auth.verifier
            .verify(token.trim())
            .await
            .map_err(|rejection| match rejection {
                Rejection::Invalid(detail) => ApiError::Unauthenticated(detail),
                Rejection::IssuerUnavailable(detail) => ApiError::Unavailable {
                    detail,
                    retry_after_secs: 5,
                },
            })?;
    // A blank subject names nobody: it would otherwise be one shared user (and match an
    // empty entry of the administrators' list).
    if verified.subject.trim().is_empty() {
        return Err(ApiError::Unauthenticated(
            "the token's `sub` is empty".into(),
        ));
    }
    // The user is recorded with its issuer and subject (an event, a read-model row): text
    // PostgreSQL cannot store would fail that write, or the projector after it.
    if verified
        .subject
        .chars()
        .chain(verified.issuer.chars())
        .any(char::is_control)
    {
        return Err(ApiError::Unauthenticated(
            "the token's `sub` or `iss` holds control characters".into(),
        ));
    }
    let identity = (verified.issuer, verified.subject);
    let known = auth
        .known_users
        .0
        .read()
        .expect("not poisoned")
        .get(&identity)
        .cloned();
    let user_id = match known {
        Some(user_id) => user_id,
        None => {
            // identity-api's id for a new user, the legacy one for a user recorded before.
            let user_id = auth
                .store
                .ensure_user(&identity.0, &identity.1)
                .await
                .map_err(|e| ApiError::Unavailable {
                    detail: format!("could not record the user: {e}"),
                    retry_after_secs: 1,
                })?;
            auth.known_users
                .0
                .write()
                .expect("not poisoned")
                .insert(identity.clone(), user_id.clone());
            user_id
        }
    };
    let (issuer, subject) = identity;
    let platform_admin = auth.settings.is_platform_admin(&issuer, &subject);
    Ok(Caller {
        actor: Actor {
            user_id,
            platform_admin,
        },
        issuer,
        subject,
        name: verified.name,
        email: verified.email,
    })
}
