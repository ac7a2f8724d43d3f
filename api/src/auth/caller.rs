//! The [`Caller`] extractor: the verified token's (issuer, subject) as the acting principal: a
//! resource provider the identity is bound to, else a person.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use plinth_commands::Identity;
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
                .check(caller.actor.id())
                .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
        }
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// Who a token's (issuer, subject) is when it is not a person already known: a resource
/// provider it is bound to (asked on each request, so that an unbind counts from the next
/// one), else a person, recorded on its first request and remembered.
async fn resolve(auth: &Auth, issuer: &str, subject: &str) -> Result<Actor, ApiError> {
    let identity = auth
        .store
        .resolve_identity(issuer, subject)
        .await
        .map_err(|e| ApiError::Unavailable {
            detail: format!("could not look up or record the caller: {e}"),
            retry_after_secs: 1,
        })?;
    match identity {
        Identity::User(user_id) => {
            auth.known_users
                .0
                .write()
                .expect("not poisoned")
                .insert((issuer.to_owned(), subject.to_owned()), user_id.clone());
            Ok(Actor::user(
                user_id,
                auth.settings.is_platform_admin(issuer, subject),
            ))
        }
        Identity::Retired(ids) => Err(ApiError::Unauthenticated(format!(
            "the token's identity is no longer bound to its resource provider ({})",
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Identity::ResourceProviders(ids) => match <[_; 1]>::try_from(ids) {
            Ok([id]) => Ok(Actor::resource_provider(
                id,
                issuer.to_owned(),
                subject.to_owned(),
            )),
            // Two binds of one identity to two providers raced: acting as either would be a
            // guess, so neither, until an admin unbinds one.
            Err(ids) => Err(ApiError::Unauthenticated(format!(
                "the token's identity is bound to several resource providers ({})",
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
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
    let (issuer, subject) = identity;
    let actor = match known {
        // A recorded person: a bind of its identity is refused, so it stays one.
        Some(user_id) => Actor::user(user_id, auth.settings.is_platform_admin(&issuer, &subject)),
        None => resolve(auth, &issuer, &subject).await?,
    };
    Ok(Caller {
        actor,
        issuer,
        subject,
        name: verified.name,
        email: verified.email,
    })
}
