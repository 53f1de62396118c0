//! Errors as `application/problem+json` (RFC 9457): every failure a client can cause
//! gets a 4xx with a title naming the problem and, where there is one, the offending
//! field. Bad input never becomes a 500.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Object, serde::Serialize)]
pub struct Problem {
    /// A URI reference identifying the problem type (`about:blank`: see `title`).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem.
    pub title: String,
    pub status: u16,
    /// Explanation specific to this request.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request parameter or body field at fault, if any.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            field: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Problem {
        self.detail = Some(d.into());
        self
    }

    pub fn field(mut self, f: impl Into<String>) -> Problem {
        self.field = Some(f.into());
        self
    }
}

/// The error responses of every operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or a parameter is invalid.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing or wrong bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// No such resource.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request conflicts with the current state.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request body is larger than the configured limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The request body is not of a media type the operation accepts (or has no
    /// `Content-Type`).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// A failure on our side (database, disk); the detail says which.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// Temporarily unable (e.g. the database is busy); retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest(Json(
            Problem::new(StatusCode::BAD_REQUEST, format!("invalid {field}"))
                .detail(detail)
                .field(field),
        ))
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::NotFound(Json(
            Problem::new(StatusCode::NOT_FOUND, format!("{what} not found"))
                .detail(format!("no {what} with id {id}")),
        ))
    }

    pub fn conflict(title: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Conflict(Json(
            Problem::new(StatusCode::CONFLICT, title).detail(detail),
        ))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::Unauthorized(Json(unauthorized_problem()))
    }

    pub fn too_large(detail: impl Into<String>) -> ApiError {
        ApiError::TooLarge(Json(
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").detail(detail),
        ))
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "API request failed");
        ApiError::Internal(Json(
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                .detail(detail.to_string()),
        ))
    }
}

pub fn unauthorized_problem() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
        .detail("send `Authorization: Bearer <token>`; `netguardian token` prints the token")
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<duckdb::Error> for ApiError {
    fn from(e: duckdb::Error) -> ApiError {
        ApiError::internal(e)
    }
}

/// Turns any error poem or poem-openapi raise before a handler runs (unparsable
/// parameter, missing body, unknown route, failed auth, oversized body) into a problem
/// document with the same status.
pub async fn to_problem(err: poem::Error) -> poem::Response {
    // Errors our handlers return are already problem documents: pass them through.
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let mut p = Problem::new(
        status,
        status.canonical_reason().unwrap_or("error").to_lowercase(),
    );
    if let Some(pe) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        p.title = format!("invalid parameter {}", pe.name);
        p.field = Some(pe.name.to_string());
        p.detail = Some(pe.reason.clone());
    } else if let Some(pe) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        p.title = "invalid request body".into();
        p.field = Some("body".into());
        p.detail = Some(pe.reason.clone());
    } else if err.is::<poem_openapi::error::AuthorizationError>()
        || status == StatusCode::UNAUTHORIZED
    {
        p = unauthorized_problem();
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        p.title = "request body too large".into();
    } else {
        let msg = err.to_string();
        if !msg.is_empty() {
            p.detail = Some(msg);
        }
    }
    let body = serde_json::to_vec(&p).unwrap_or_default();
    poem::Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body)
}
