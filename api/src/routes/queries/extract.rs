//! The extractors every read route is made of, so that a handler is its query and nothing else:
//! [`Id`] (authenticate, then parse the path id: 401 before 400) and [`Read`] (the query string,
//! its page, the `?min_position=` wait and a read connection), and [`Reply`] for typed bodies.

use std::collections::HashMap;
use std::fmt::Display;
use std::marker::PhantomData;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::Json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Object, Required, Type};

use plinth_domain::{
    AggregateKind, LocationId, ProviderId, ResourceId, ResourceProviderId, TenantId, UserId,
};
use plinth_projections::read::queries::{Page, PageRequest, Viewer};

use super::{not_found, PageBody, Params, MIN_POSITION_WAIT};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A read route's answer: a typed body, or a problem.
pub(crate) type Reply<T> = Result<Json<T>, ApiError>;

/// An id type a route takes in its path, with the word a 404 uses for it.
pub(crate) trait RouteId: FromStr<Err: Display> + Display + Send {
    const WHAT: &'static str;
}

macro_rules! route_ids {
    ($($type:ty => $what:literal),* $(,)?) => {
        $(impl RouteId for $type {
            const WHAT: &'static str = $what;
        })*
    };
}

route_ids! {
    TenantId => "tenant",
    LocationId => "location",
    ResourceProviderId => "resource provider",
    ProviderId => "provider",
    UserId => "user",
    ResourceId => "resource",
    StreamId => "stream",
}

/// Any stream's id: a resource's or a user's.
#[derive(Debug, Clone)]
pub(crate) struct StreamId(String);

impl FromStr for StreamId {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if AggregateKind::of_stream(raw).is_some() {
            return Ok(Self(raw.to_owned()));
        }
        // Not a known kind: let the tenant parser say what is wrong with it.
        TenantId::parse(raw)
            .map(|t| Self(t.to_string()))
            .map_err(|e| e.to_string())
    }
}

impl Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a value with its type's parser: malformed or wrongly prefixed is 400.
pub(crate) fn parse<T: FromStr<Err: Display>>(raw: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|e: T::Err| ApiError::BadRequest(e.to_string()))
}

/// The `{id}` of the path as an `I`. Authenticates first, so that a stranger learns nothing
/// from which ids are well-formed.
#[derive(Debug)]
pub(crate) struct Id<I> {
    /// The id as the path gave it, checked by `I`'s parser (the queries take text).
    raw: String,
    kind: PhantomData<I>,
}

impl<I: RouteId> Id<I> {
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The 404 for this id: absent, or not visible to the caller (the same answer).
    pub(crate) fn missing(&self) -> ApiError {
        not_found(I::WHAT, &self.raw)
    }

    /// `Some` as the body; `None` as the 404 for this id.
    pub(crate) fn found<T>(&self, value: Option<T>) -> Reply<T> {
        value.map(Json).ok_or_else(|| self.missing())
    }

    /// A page as the body, its cursor made opaque; `None` as the 404 for this id.
    pub(crate) fn found_page<T>(&self, page: Option<Page<T>>) -> Reply<PageBody<T>> {
        page.map(|p| Json(p.into())).ok_or_else(|| self.missing())
    }
}

/// The document's `{id}` path parameter, named after what the route reads.
impl<I: RouteId> utoipa::IntoParams for Id<I> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(format!("The {}'s id", I::WHAT)))
            .schema(Some(Object::with_type(Type::String)))
            .build()]
    }
}

impl<I: RouteId> FromRequestParts<AppState> for Id<I> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_request_parts(parts, state).await?;
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        parse::<I>(&raw)?;
        Ok(Id {
            raw,
            kind: PhantomData,
        })
    }
}

/// Everything a read needs, once the read models cover `?min_position=`: the caller, its
/// query string and page (`?after=&limit=`), and a connection.
pub(crate) struct Read {
    pub(crate) caller: Caller,
    pub(crate) viewer: Viewer,
    pub(crate) params: Params,
    pub(crate) page: PageRequest,
    pub(crate) client: deadpool_postgres::Client,
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read")
            .field("caller", &self.caller)
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Read {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let params = Params::new(query);
        let page = params.page()?;
        let min_position = params.int("min_position")?;
        if min_position.is_some_and(|p| p < 0) {
            return Err(ApiError::BadRequest("`min_position` must be ≥ 0".into()));
        }
        let client =
            crate::replicas::route::read_connection(state, parts, min_position, MIN_POSITION_WAIT)
                .await?;
        Ok(Read {
            viewer: Viewer::of(&caller.actor),
            caller,
            params,
            page,
            client,
        })
    }
}
