//! API: the REST + WebSocket interface of `netguardian serve` (poem + poem-openapi).
//!
//! Every operation is typed, so the OpenAPI document (`/openapi.json`, the Swagger UI
//! at `/docs`, ReDoc at `/redoc`, and the committed `openapi/openapi.json`) is generated
//! from the code. One file per resource: `status` (health, stats, config, interfaces),
//! `capture` (capture control, uploads, jobs), `devices`, `flows`, `meta` (dns, tls,
//! http, dhcp), `alerts`, `analytics`, `models` (anomaly models), `train` (retraining jobs), `sql` (read-only
//! SQL), `export` (export jobs); `ws` is the live stream; `auth` and `error` are shared
//! by all.
//!
//! Handlers read through [`crate::store::query::ReadPool`] (their own DuckDB
//! connections, on blocking threads), never through the writer's connection.

pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod capture;
pub mod devices;
pub mod error;
pub mod export;
pub mod flows;
pub mod meta;
pub mod models;
pub mod sql;
pub mod status;
pub mod train;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

use crate::config::Config;
use crate::service::control::Control;
use crate::store::query::ReadPool;

/// What every handler can reach (installed as request data).
pub struct ApiState {
    pub cfg: Config,
    pub db: ReadPool,
    pub token: String,
    pub started: Instant,
    pub control: Arc<Control>,
}

pub type Apis = (
    status::StatusApi,
    devices::DevicesApi,
    flows::FlowsApi,
    meta::MetaApi,
    alerts::AlertsApi,
    analytics::AnalyticsApi,
    capture::CaptureApi,
    models::ModelsApi,
    train::TrainApi,
    sql::SqlApi,
    export::ExportApi,
);

/// The OpenAPI service (independent of any state, so the spec can be printed offline).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            status::StatusApi,
            devices::DevicesApi,
            flows::FlowsApi,
            meta::MetaApi,
            alerts::AlertsApi,
            analytics::AnalyticsApi,
            capture::CaptureApi,
            models::ModelsApi,
            train::TrainApi,
            sql::SqlApi,
            export::ExportApi,
        ),
        "netguardian",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Home-network security monitor. Reads need the bearer token unless `api.anonymous_reads` \
         is set; every mutating call needs it (`netguardian token` prints it). Errors are \
         `application/problem+json`. Live events: WebSocket `/ws/stream` (messages \
         `{type, data, timestamp}` of type flow, alert, device, stats; send \
         `{\"subscribe\": [\"flow\", \"alert\"], \"device\": \"aa:bb:cc:dd:ee:ff\"}` to filter).",
    )
}

/// The OpenAPI document as pretty JSON (what `netguardian openapi` prints and
/// `openapi/openapi.json` holds).
pub fn spec_json() -> String {
    service().spec()
}

/// The whole HTTP application.
pub fn app(state: Arc<ApiState>) -> impl poem::Endpoint {
    let api = service();
    let docs = api.swagger_ui();
    let redoc = api.redoc();
    let spec = api.spec_endpoint();
    let body_limit = (state.cfg.api.max_body_kib as usize).saturating_mul(1024);
    let upload_limit = (state.cfg.api.max_upload_mib as usize).saturating_mul(1 << 20);
    let mut cors = Cors::new();
    for o in &state.cfg.api.cors_origins {
        cors = cors.allow_origin(o.as_str());
    }
    let with_cors = !state.cfg.api.cors_origins.is_empty();
    // Uploads get their own, larger limit (also enforced while streaming, for bodies
    // without a Content-Length); everything else the JSON body limit.
    let limited = api.around(move |ep, req| async move {
        let limit = if req.uri().path() == "/api/pcap" {
            upload_limit
        } else {
            body_limit
        };
        let len = req
            .header(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<usize>().ok());
        if len.is_some_and(|l| l > limit) {
            return Err(poem::Error::from_status(
                poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            ));
        }
        ep.call(req).await.map(poem::IntoResponse::into_response)
    });
    let route = Route::new()
        .nest("/", limited)
        .nest("/docs", docs)
        .nest("/redoc", redoc)
        .at("/openapi.json", spec)
        .at("/ws/stream", poem::get(ws::stream));
    route
        .with_if(with_cors, cors)
        .data(state)
        .catch_all_error(error::to_problem)
        .into_endpoint()
}
