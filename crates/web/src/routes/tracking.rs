//! The tracker's HTTP edge: the script, the event endpoint and the `<noscript>` pixel. The
//! visitor cookie is set only with statistics consent and never when the browser sends
//! Do-Not-Track or Global Privacy Control; otherwise counting is cookieless.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passme_analytics::event::EventIn;
use passme_analytics::ingest::IngestError;
use passme_analytics::visitor::VisitorIds;
use passme_analytics::{AcceptError, Caller};
use passme_core::consent::{self, ConsentCookie, ConsentState};
use passme_policy::CookieCategory;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::context::client_ip;
use crate::cookies;
use crate::error::WebError;
use crate::middleware::{body_bytes, parse_json};

pub const VISITOR_COOKIE: &str = "__Host-pm_vid";
/// A batch of 50 events with 2 KB addresses fits with room to spare.
pub const EVENTS_BODY_LIMIT: usize = 256 * 1024;
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/t.js"),
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsAccepted {
    /// Page views stored (durably, before this answer).
    pub stored: usize,
    /// Page views not counted: bots, referrer spam, and those of a signed-in person who objects
    /// to the statistics.
    pub dropped: usize,
}

/// True when the browser asks not to be tracked: such a visit is counted cookielessly only.
pub fn refuses_tracking(headers: &HeaderMap) -> bool {
    ["dnt", "sec-gpc"].iter().any(|h| headers.get(*h).is_some_and(|v| v.as_bytes() == b"1"))
}

/// The visitor cookie to use and whether to set or delete it on the response.
fn visitor_cookie(state: &AppState, headers: &HeaderMap) -> (Option<String>, Option<HeaderValue>) {
    let consent =
        ConsentState::of(cookies::single(headers, consent::COOKIE_NAME).and_then(ConsentCookie::parse), &state.policy.meta.version);
    let existing = cookies::single(headers, VISITOR_COOKIE);
    if !consent.choices().allows(CookieCategory::Statistics) || refuses_tracking(headers) {
        return (None, existing.and_then(|_| cookies::delete(VISITOR_COOKIE)));
    }
    match existing.filter(|v| VisitorIds::valid_cookie_value(v)) {
        Some(value) => (Some(value.to_string()), None),
        None => {
            let value = VisitorIds::new_cookie_value();
            let set = cookies::set(&state.policy, VISITOR_COOKIE, &value);
            (Some(value), set)
        }
    }
}

fn error_for(e: AcceptError) -> Response {
    let (status, code, retry) = match &e {
        AcceptError::Invalid(inner) => (StatusCode::BAD_REQUEST, inner.code, None),
        AcceptError::BatchTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", None),
        AcceptError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(10)),
        AcceptError::Ingest(IngestError::Overloaded) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", Some(1)),
        AcceptError::Ingest(IngestError::Unavailable) => (StatusCode::SERVICE_UNAVAILABLE, "events_unavailable", Some(5)),
    };
    // The event's position (which one of a batch) is what only this error can say.
    let error = WebError::new(status, code).with_detail(e.to_string());
    match retry {
        Some(seconds) => error.retry_after(seconds).into_response(),
        None => error.into_response(),
    }
}

/// What the request says about its sender, read before its body is consumed.
struct Sender {
    /// The signed-in person objects to the statistics: nothing they send is recorded.
    objects: bool,
    ip: std::net::IpAddr,
    user_agent: String,
    cookie: Option<String>,
    set_cookie: Option<HeaderValue>,
}

impl Sender {
    async fn of(state: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> Sender {
        let (cookie, set_cookie) = visitor_cookie(state, headers);
        Sender {
            objects: objects_to_statistics(state, headers).await,
            ip: client_ip(headers, extensions, &state.trusted_proxies),
            user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
            cookie,
            set_cookie,
        }
    }
}

/// Whether the request comes from a signed-in person who objects to the statistics. Only a
/// request with a session cookie costs a lookup; an unknown session objects to nothing.
async fn objects_to_statistics(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = cookies::single(headers, crate::visitor::SESSION_COOKIE) else { return false };
    let Ok(Some(session)) = state.identity.sessions.resolve(&secrecy::SecretString::from(token.to_string())).await else { return false };
    state.objections.objects(&session.account_id, STATISTICS).await.unwrap_or(false)
}

/// The purpose of service tracking that a person may object to.
const STATISTICS: &str = "develop";

async fn accept(state: &AppState, sender: Sender, batch: Vec<EventIn>) -> Response {
    if sender.objects {
        // Answered like any accepted batch, and nothing is stored or counted.
        return (StatusCode::ACCEPTED, axum::Json(EventsAccepted { stored: 0, dropped: batch.len() })).into_response();
    }
    let caller = Caller { ip: sender.ip, user_agent: &sender.user_agent, visitor_cookie: sender.cookie.as_deref() };
    match state.analytics.accept(&caller, batch).await {
        Ok(accepted) => {
            let mut response =
                (StatusCode::ACCEPTED, axum::Json(EventsAccepted { stored: accepted.stored, dropped: accepted.dropped })).into_response();
            if let Some(cookie) = sender.set_cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => error_for(e),
    }
}

/// The body of `POST /api/v1/events` in the document: one page view, or a batch of 1 to 50
/// stored whole or refused whole. (The handler tells the two apart by the first byte.)
pub struct EventsBody;

impl utoipa::PartialSchema for EventsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Ref};
        let event = Ref::from_schema_name("EventIn");
        OneOfBuilder::new()
            .description(Some("One page view, or a batch of 1 to 50 stored whole or refused whole."))
            .item(event.clone())
            .item(ArrayBuilder::new().items(event).min_items(Some(1)).max_items(Some(passme_analytics::event::MAX_BATCH)))
            .into()
    }
}

impl utoipa::ToSchema for EventsBody {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("EventIn".into(), <EventIn as utoipa::PartialSchema>::schema()));
        <EventIn as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Records page views: one event or a list (at most 50), as JSON. `text/plain` is accepted too,
/// because that is what `navigator.sendBeacon` can send without a preflight.
#[utoipa::path(post, path = "/api/v1/events", operation_id = "record_events", tag = "tracking",
    request_body(content((EventsBody = "application/json"), (EventsBody = "text/plain"))),
    responses(
        (status = 202, description = "Stored (or dropped as a bot); acknowledged only once durable", body = EventsAccepted),
        (status = 400, description = "Malformed JSON (`body_invalid_json`), or an event refused: `unknown_site`, `foreign_url`, `invalid_url`, `url_too_long`, `control_characters`, `timestamp_out_of_window`, `card_data_refused`", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 256 KiB (`body_too_large`) or more than 50 events (`batch_too_large`)", body = crate::error::ErrorBody),
        (status = 415, description = "Neither JSON nor text/plain (`unsupported_media_type`)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many events from this address (`rate_limited`); see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Overloaded (`overloaded`); retry after the Retry-After header", body = crate::error::ErrorBody),
    ))]
pub async fn events(State(state): State<AppState>, request: Request) -> Response {
    let sender = Sender::of(&state, request.headers(), request.extensions()).await;
    let bytes = match body_bytes(request, &state, &["application/json", "text/plain"]).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    // One event or a list, told apart by the first byte (an untagged enum would first buffer the
    // body into an intermediate tree).
    let batch = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => parse_json::<Vec<EventIn>>(&bytes),
        _ => parse_json::<EventIn>(&bytes).map(|e| vec![e]),
    };
    let batch = match batch {
        Ok(batch) => batch,
        Err(e) => return e.into_response(),
    };
    accept(&state, sender, batch).await
}

#[derive(Debug, Deserialize)]
pub struct PixelQuery {
    site: String,
    /// The page; defaults to the `Referer` the image request carries.
    url: Option<String>,
}

/// The `<noscript>` fallback: an image whose request records one page view.
pub async fn pixel(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers();
    let Ok(Query(query)) = Query::<PixelQuery>::try_from_uri(request.uri()) else {
        return WebError::bad_request("query_invalid").with_detail("?site=…&url=…").into_response();
    };
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some(url) = query.url.or(referer) else {
        return WebError::bad_request("url_missing").into_response();
    };
    let event = EventIn { site: query.site, url, referrer: None, ts: state.clock.now_ms() };
    let sender = Sender::of(&state, headers, request.extensions()).await;
    let response = accept(&state, sender, vec![event]).await;
    if !response.status().is_success() {
        return response;
    }
    let mut pixel = ([(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")], PIXEL).into_response();
    if let Some(cookie) = response.headers().get(header::SET_COOKIE) {
        pixel.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    pixel
}
