//! WebSocket `/ws/stream`: flows, alerts, device changes and a stats tick, live.
//!
//! Messages are `{"type", "data", "timestamp"}`. A client may send
//! `{"subscribe": ["flow", "alert", "device", "stats"], "device": "aa:bb:cc:dd:ee:ff"}`
//! to choose types and one device (omit `device` for all), and, when it authenticated
//! with the token, the capture commands `{"command": "capture.start" | "capture.stop"}`
//! and `{"command": "capture.set", "interface": ..., "filter": ...}`. Browsers cannot
//! set headers on a WebSocket, so the token may also come as `?token=`.
//!
//! Each client reads from the hub's broadcast ring at its own pace: a client that falls
//! behind is told how many messages it skipped; one that stops reading is dropped after
//! a send timeout. Neither can slow the pipeline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{Message, WebSocket};
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use super::devices::parse_mac;
use crate::service::control::ControlError;
use crate::service::stream::KINDS;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMsg {
    subscribe: Option<Vec<String>>,
    device: Option<String>,
    command: Option<String>,
    interface: Option<String>,
    filter: Option<String>,
}

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

fn reply(kind: &str, data: serde_json::Value) -> Message {
    Message::Text(json!({"type": kind, "data": data, "timestamp": chrono::Utc::now()}).to_string())
}

#[handler]
pub async fn stream(
    req: &Request,
    ws: WebSocket,
    state: Data<&Arc<ApiState>>,
    q: Query<WsQuery>,
) -> Response {
    let header_token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = header_token.or_else(|| q.0.token.clone());
    let authed = token.as_deref() == Some(state.token.as_str());
    if !authed && !state.cfg.api.anonymous_reads {
        return super::error::to_problem(poem::Error::from_status(
            poem::http::StatusCode::UNAUTHORIZED,
        ))
        .await;
    }
    let state = state.0.clone();
    ws.on_upgrade(move |socket| async move {
        let (mut sink, mut source) = socket.split();
        let mut rx = state.control.hub().subscribe();
        let mut kinds: HashSet<String> = KINDS.iter().map(|k| k.to_string()).collect();
        let mut device: Option<String> = None;
        loop {
            let out = tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(m) => {
                        if !kinds.contains(m.kind) {
                            continue;
                        }
                        if let Some(d) = &device
                            && m.kind != "stats"
                            && !m.macs.iter().any(|x| x == d)
                        {
                            continue;
                        }
                        Message::Text(m.json.clone())
                    }
                    Err(RecvError::Lagged(n)) => reply("lagged", json!({"skipped": n})),
                    Err(RecvError::Closed) => break,
                },
                incoming = source.next() => match incoming {
                    Some(Ok(Message::Text(t))) => {
                        handle_client(&state, authed, &t, &mut kinds, &mut device).await
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
            };
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(out)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    })
    .into_response()
}

async fn handle_client(
    state: &Arc<ApiState>,
    authed: bool,
    text: &str,
    kinds: &mut HashSet<String>,
    device: &mut Option<String>,
) -> Message {
    let msg: ClientMsg = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return reply(
                "error",
                json!({"title": "invalid message", "detail": e.to_string()}),
            );
        }
    };
    if let Some(list) = msg.subscribe {
        if let Some(bad) = list.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return reply(
                "error",
                json!({"title": "invalid subscribe", "field": "subscribe",
                       "detail": format!("unknown type {bad:?}; expected one of {KINDS:?}")}),
            );
        }
        let new_device = match msg.device.as_deref() {
            None | Some("") => None,
            Some(d) => match parse_mac("device", d) {
                Ok(m) => Some(m),
                Err(_) => {
                    return reply(
                        "error",
                        json!({"title": "invalid device", "field": "device",
                               "detail": format!("{d:?} is not a MAC address")}),
                    );
                }
            },
        };
        *kinds = list.into_iter().collect();
        *device = new_device;
        return reply(
            "subscribed",
            json!({"types": kinds.iter().collect::<Vec<_>>(), "device": device}),
        );
    }
    let Some(cmd) = msg.command else {
        return reply(
            "error",
            json!({"title": "invalid message", "detail": "expected subscribe or command"}),
        );
    };
    if !authed {
        return reply(
            "error",
            json!({"title": "missing or wrong bearer token", "detail": "capture commands need the token"}),
        );
    }
    let control = state.control.clone();
    let (interface, filter) = (msg.interface, msg.filter);
    let res = tokio::task::spawn_blocking(move || match cmd.as_str() {
        "capture.start" => control.start(),
        "capture.stop" => Ok(control.stop()),
        "capture.set" => {
            let mut s = control.settings();
            if let Some(i) = interface {
                s.interface = i;
            }
            if let Some(f) = filter {
                s.filter = f;
            }
            control.reconfigure(s)
        }
        other => Err(ControlError::Invalid {
            field: "command",
            msg: format!(
                "unknown command {other:?}; expected capture.start, capture.stop or capture.set"
            ),
        }),
    })
    .await;
    match res {
        Ok(Ok(status)) => reply("capture", serde_json::to_value(status).unwrap_or_default()),
        Ok(Err(ControlError::Invalid { field, msg })) => reply(
            "error",
            json!({"title": format!("invalid {field}"), "field": field, "detail": msg}),
        ),
        Ok(Err(e)) => reply(
            "error",
            json!({"title": "command failed", "detail": e.to_string()}),
        ),
        Err(e) => reply(
            "error",
            json!({"title": "command failed", "detail": e.to_string()}),
        ),
    }
}
