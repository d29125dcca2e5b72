//! Messages on the web: the person's page of choices and devices, the JSON API for the same and
//! for push subscriptions, the one-click unsubscribe (RFC 8058) and double opt-in links that work
//! without signing in, the mail relay's delivery reports, and the staff page for announcements
//! and partner exports. The decisions are in `passme_messaging`.

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use passme_core::crypto::constant_time_eq;
use passme_core::identity::staff::Role;
use passme_messages::Texts;
use passme_messaging::campaigns::{Kind, NewCampaign, Progress};
use passme_messaging::prefs::{BOUNCED, COMPLAINED, Changed, Unsubscribed};
use passme_messaging::push::Subscription;
use passme_messaging::{Channel, Topic, address_hash, dsn};
use passme_store::Segment;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::context::PageContext;
use crate::error::WebError;
use crate::extract::{CsrfForm, Roles, SameOrigin, SignedIn, Staff};
use crate::middleware::JsonBody;
use crate::routes::pages::{Chrome, page, when};

/// A browser's subscription is a few hundred bytes.
pub const SUBSCRIBE_BODY_LIMIT: usize = 16 * 1024;

/// Announcements and partner exports.
pub struct Communicators;

impl Roles for Communicators {
    const ALLOWED: &'static [Role] = &[Role::Admin];
}

pub(crate) fn topic_name(t: Texts, topic: Topic) -> &'static str {
    match topic {
        Topic::Service => t.messages_topic_service(),
        Topic::Marketing => t.messages_topic_marketing(),
        Topic::Partner => t.messages_topic_partner(),
    }
}

fn topic_about(t: Texts, topic: Topic) -> &'static str {
    match topic {
        Topic::Service => t.messages_about_service(),
        Topic::Marketing => t.messages_about_marketing(),
        Topic::Partner => t.messages_about_partner(),
    }
}

pub(crate) fn channel_name(t: Texts, channel: Channel) -> &'static str {
    match channel {
        Channel::Email => t.messages_channel_email(),
        Channel::Push => t.messages_channel_push(),
        Channel::Audience => t.messages_channel_audience(),
    }
}

/// A choice's state in words.
pub(crate) fn state_name(t: Texts, choice: &passme_messaging::Choice) -> &'static str {
    match choice.state() {
        "pending" => t.messages_state_pending(),
        "on" => t.messages_state_on(),
        _ => t.messages_state_off(),
    }
}

/// A logged message in words: (when, what · channel · how it went).
pub(crate) fn log_line(t: Texts, m: &passme_store::MessageRow) -> (String, String) {
    let template = t.message_template(&m.template).map_or(m.template.as_str(), |s| s);
    let channel = Channel::parse(&m.channel).map_or("?", |c| channel_name(t, c));
    let status = t.message_status(&m.status).map_or(m.status.as_str(), |s| s);
    (when(m.created_at), format!("{template} · {channel} · {status}"))
}

struct Cell {
    topic: &'static str,
    channel: &'static str,
    name: &'static str,
    state: &'static str,
    on: bool,
    pending: bool,
}

struct Section {
    id: &'static str,
    name: &'static str,
    about: &'static str,
    cells: Vec<Cell>,
}

struct DeviceView {
    id: String,
    name: String,
    added: String,
    last: String,
}

#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesPage {
    chrome: Chrome,
    csrf: String,
    sections: Vec<Section>,
    devices: Vec<DeviceView>,
    /// Push can be turned on only once a browser is registered.
    has_devices: bool,
    /// Why mail to the address is stopped (a bounce or a spam report), in words.
    suppressed: Option<&'static str>,
    /// The latest messages: (when, what · channel · how it went).
    log: Vec<(String, String)>,
}

/// The person's page: every topic and channel with its state and a button to change it, the
/// devices push goes to, and the latest messages we sent.
pub async fn page_of_choices(State(state): State<AppState>, ctx: PageContext, SignedIn(session): SignedIn) -> Result<Response, WebError> {
    let t = ctx.t;
    let account_id = &session.account_id;
    let choices = state.messaging.prefs.choices(account_id).await?;
    let sections = Topic::ALL
        .into_iter()
        .map(|topic| Section {
            id: topic.id(),
            name: topic_name(t, topic),
            about: topic_about(t, topic),
            cells: choices
                .iter()
                .filter(|c| c.topic == topic)
                .map(|c| Cell {
                    topic: topic.id(),
                    channel: c.channel.id(),
                    name: channel_name(t, c.channel),
                    state: state_name(t, c),
                    on: c.on,
                    pending: c.pending,
                })
                .collect(),
        })
        .collect();
    let devices: Vec<DeviceView> = state
        .messaging
        .push
        .devices(account_id)
        .await?
        .into_iter()
        .map(|d| DeviceView {
            id: d.id, name: d.device, added: when(d.created_at), last: d.last_sent_at.map_or_else(|| "–".into(), when)
        })
        .collect();
    let account = state.store.account(account_id).await?.ok_or(WebError::for_status(StatusCode::UNAUTHORIZED))?;
    let suppressed = match state.store.suppression(&address_hash(&account.email)).await?.as_deref() {
        Some(BOUNCED) => Some(t.messages_suppressed_bounced()),
        Some(COMPLAINED) => Some(t.messages_suppressed_complained()),
        _ => None,
    };
    let log = state.store.messages_of(account_id, 10).await?.iter().map(|m| log_line(t, m)).collect();
    let has_devices = !devices.is_empty();
    let body = MessagesPage {
        chrome: Chrome::new(&state, &ctx, t.messages_heading(), true),
        csrf: ctx.csrf_token(&state),
        sections,
        devices,
        has_devices,
        suppressed,
        log,
    };
    Ok(page(&ctx, &state, true, &body))
}

#[derive(Debug, Deserialize)]
pub struct ChoiceInput {
    csrf: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    channel: String,
    /// `on` or `off`.
    #[serde(default)]
    choice: String,
}

crate::csrf_protected!(ChoiceInput);

fn parse_choice(topic: &str, channel: &str, choice: &str) -> Result<(Topic, Channel, bool), WebError> {
    let (Some(topic), Some(channel)) = (Topic::parse(topic), Channel::parse(channel)) else {
        return Err(WebError::bad_request("message_channel_unknown"));
    };
    let on = match choice {
        "on" => true,
        "off" => false,
        _ => return Err(WebError::bad_request("message_choice_invalid")),
    };
    Ok((topic, channel, on))
}

async fn choose(
    state: &AppState,
    account_id: &passme_store::AccountId,
    topic: Topic,
    channel: Channel,
    on: bool,
) -> Result<Changed, WebError> {
    let account = state.store.account(account_id).await?.ok_or(WebError::for_status(StatusCode::UNAUTHORIZED))?;
    if on && channel == Channel::Push && state.messaging.push.devices(account_id).await?.is_empty() {
        return Err(WebError::new(StatusCode::CONFLICT, "push_no_device"));
    }
    Ok(state.messaging.choose(account_id, &account.email, topic, channel, on).await?)
}

pub async fn change_choice(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<ChoiceInput>,
) -> Result<Response, WebError> {
    let (topic, channel, on) = parse_choice(&input.topic, &input.channel, &input.choice)?;
    let done = match choose(&state, &session.account_id, topic, channel, on).await? {
        Changed::ConfirmationNeeded { .. } => "messages_confirm_sent",
        _ if on => "messages_on",
        _ => "messages_off",
    };
    Ok(Redirect::to(&format!("/account/messages?done={done}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DeviceInput {
    csrf: String,
    #[serde(default)]
    device: String,
}

crate::csrf_protected!(DeviceInput);

pub async fn remove_device(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    CsrfForm(input): CsrfForm<DeviceInput>,
) -> Result<Response, WebError> {
    if !state.messaging.push.unsubscribe(&session.account_id, &input.device).await? {
        return Err(WebError::new(StatusCode::NOT_FOUND, "push_device_unknown"));
    }
    Ok(Redirect::to("/account/messages?done=device_removed").into_response())
}

/// One choice, as the API shows and takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceBody {
    /// `service`, `marketing` or `partner`.
    pub topic: String,
    /// `email`, `push` or `audience` (partner marketing).
    pub channel: String,
    /// `on` or `off`; reads may also say `pending` (waiting for the e-mailed confirmation).
    pub state: String,
}

#[utoipa::path(get, path = "/api/v1/messaging/preferences", tag = "messaging", security(("session" = [])), responses(
    (status = 200, description = "Every topic and channel with the person's choice", body = [ChoiceBody]),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
))]
pub async fn api_choices(State(state): State<AppState>, SignedIn(session): SignedIn) -> Result<Json<Vec<ChoiceBody>>, WebError> {
    let choices = state.messaging.prefs.choices(&session.account_id).await?;
    Ok(Json(
        choices
            .into_iter()
            .map(|c| ChoiceBody { topic: c.topic.id().into(), channel: c.channel.id().into(), state: c.state().into() })
            .collect(),
    ))
}

#[utoipa::path(put, path = "/api/v1/messaging/preferences", tag = "messaging", security(("session" = [])), request_body = ChoiceBody, responses(
    (status = 200, description = "The choice as it is now (`pending` for news by e-mail until the mailed link is opened)", body = ChoiceBody),
    (status = 400, description = "Unknown topic, channel or state", body = crate::error::ErrorBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 409, description = "The address is suppressed after a bounce, or push has no device", body = crate::error::ErrorBody),
))]
pub async fn api_choose(
    State(state): State<AppState>,
    _: SameOrigin,
    SignedIn(session): SignedIn,
    JsonBody(body): JsonBody<ChoiceBody>,
) -> Result<Json<ChoiceBody>, WebError> {
    let (topic, channel, on) = parse_choice(&body.topic, &body.channel, &body.state)?;
    let changed = choose(&state, &session.account_id, topic, channel, on).await?;
    let now = match changed {
        Changed::ConfirmationNeeded { .. } => "pending",
        _ if on => "on",
        _ => "off",
    };
    Ok(Json(ChoiceBody { topic: body.topic, channel: body.channel, state: now.into() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushKey {
    /// The VAPID public key (uncompressed P-256 point, base64url) for `pushManager.subscribe`.
    pub key: String,
}

#[utoipa::path(get, path = "/api/v1/push/key", tag = "messaging", responses((status = 200, description = "The key browsers subscribe with", body = PushKey)))]
pub async fn push_key(State(state): State<AppState>) -> Result<Json<PushKey>, WebError> {
    Ok(Json(PushKey { key: state.messaging.push.public_key().await? }))
}

/// A browser's subscription (`PushSubscription.toJSON()`) and a name for the device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    #[schema(value_type = Object)]
    pub subscription: serde_json::Value,
    #[serde(default)]
    pub device: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Subscribed {
    pub id: String,
}

#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "messaging", security(("session" = [])), request_body = SubscribeBody, responses(
    (status = 201, description = "Registered (or already registered by this person)", body = Subscribed),
    (status = 400, description = "Not a public HTTPS endpoint, or malformed keys", body = crate::error::ErrorBody),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 409, description = "The endpoint belongs to another person, or too many devices", body = crate::error::ErrorBody),
    (status = 413, description = "Body too large", body = crate::error::ErrorBody),
))]
pub async fn subscribe(
    State(state): State<AppState>,
    _: SameOrigin,
    SignedIn(session): SignedIn,
    JsonBody(body): JsonBody<SubscribeBody>,
) -> Result<(StatusCode, Json<Subscribed>), WebError> {
    let subscription: Subscription =
        serde_json::from_value(body.subscription).map_err(|_| WebError::bad_request("push_subscription_invalid"))?;
    let id = state.messaging.push.subscribe(&session.account_id, &subscription, &body.device).await?;
    Ok((StatusCode::CREATED, Json(Subscribed { id })))
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "messaging", security(("session" = [])), params(("id" = String, Path, description = "The id from POST /api/v1/push/subscriptions")), responses(
    (status = 204, description = "Removed"),
    (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    (status = 404, description = "No such device of yours", body = crate::error::ErrorBody),
))]
pub async fn unsubscribe_device(
    State(state): State<AppState>,
    _: SameOrigin,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, WebError> {
    if state.messaging.push.unsubscribe(&session.account_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(WebError::new(StatusCode::NOT_FOUND, "push_device_unknown"))
    }
}

#[derive(Template)]
#[template(path = "message_link.html")]
struct LinkPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    /// The form that carries the action out, when there is one to press.
    action: Option<String>,
    token: String,
    button: &'static str,
}

fn link_page(
    state: &AppState,
    ctx: &PageContext,
    heading: &'static str,
    message: String,
    action: Option<String>,
    token: String,
    button: &'static str,
) -> Response {
    let body = LinkPage { chrome: Chrome::new(state, ctx, heading, false), heading, message, action, token, button };
    page(ctx, state, false, &body)
}

/// The unsubscribe link's page. A GET (a link scanner, a preview) changes nothing: the page asks.
pub async fn unsubscribe_page(State(state): State<AppState>, ctx: PageContext, Path(token): Path<String>) -> Result<Response, WebError> {
    let Some(link) = state.messaging.prefs.links().read_unsubscribe(&token) else {
        return Err(WebError::bad_request("unsubscribe_link_invalid"));
    };
    let t = ctx.t;
    let action = format!("/unsubscribe/{token}");
    let message = format!(
        "{} {}",
        t.messages_unsubscribe_what(topic_name(t, link.topic), channel_name(t, link.channel)),
        t.messages_unsubscribe_ask()
    );
    Ok(link_page(&state, &ctx, t.messages_unsubscribe_heading(), message, Some(action), String::new(), t.messages_unsubscribe_button()))
}

/// RFC 8058 one-click unsubscribe: the mail client POSTs `List-Unsubscribe=One-Click` here, with
/// no cookies and no page; the page's button posts the same. The signed link is the proof.
pub async fn unsubscribe(State(state): State<AppState>, ctx: PageContext, Path(token): Path<String>) -> Result<Response, WebError> {
    let outcome = state.messaging.prefs.unsubscribe(&token).await?;
    let t = ctx.t;
    let message = match outcome {
        Unsubscribed::Now => t.messages_unsubscribed(),
        Unsubscribed::Already => t.messages_unsubscribed_already(),
    };
    Ok(link_page(&state, &ctx, t.messages_unsubscribe_heading(), message.to_string(), None, String::new(), ""))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    token: String,
}

/// The double opt-in link's page; the button confirms.
pub async fn confirm_page(
    State(state): State<AppState>,
    ctx: PageContext,
    Query(query): Query<ConfirmQuery>,
) -> Result<Response, WebError> {
    if state.messaging.prefs.links().read_confirm(&query.token).is_none() {
        return Err(WebError::bad_request("confirm_link_invalid"));
    }
    let t = ctx.t;
    Ok(link_page(
        &state,
        &ctx,
        t.messages_confirm_heading(),
        t.messages_confirm_ask().to_string(),
        Some("/messages/confirm".into()),
        query.token,
        t.messages_confirm_button(),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmInput {
    #[serde(default)]
    token: String,
}

/// Confirms news and offers by e-mail. The signed, expiring link is the proof; no session needed
/// (the mail may be opened on another device).
pub async fn confirm(
    State(state): State<AppState>,
    ctx: PageContext,
    axum::Form(input): axum::Form<ConfirmInput>,
) -> Result<Response, WebError> {
    state.messaging.prefs.confirm(&input.token).await?;
    let t = ctx.t;
    Ok(link_page(&state, &ctx, t.messages_confirm_heading(), t.messages_confirmed().to_string(), None, String::new(), ""))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportOutcome {
    /// Addresses now suppressed.
    pub suppressed: usize,
}

#[utoipa::path(post, path = "/api/v1/messaging/reports", tag = "messaging", security(("bearer" = [])), request_body(content = String, content_type = "message/rfc822", description = "A delivery status notification (RFC 3464) or an abuse report (RFC 5965), as the relay received it"), responses(
    (status = 202, description = "Read; bounced or complaining addresses are suppressed", body = ReportOutcome),
    (status = 401, description = "No or wrong relay token", body = crate::error::ErrorBody),
    (status = 404, description = "Closed: no relay token is configured (`not_found`)", body = crate::error::ErrorBody),
    (status = 413, description = "Larger than a report", body = crate::error::ErrorBody),
    (status = 422, description = "Not a delivery or feedback report", body = crate::error::ErrorBody),
))]
pub async fn report(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<ReportOutcome>), WebError> {
    let Some(expected) = &state.dsn_token else { return Err(WebError::new(StatusCode::NOT_FOUND, "not_found")) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(WebError::new(StatusCode::UNAUTHORIZED, "report_token_invalid"));
    }
    if body.len() > dsn::MAX_REPORT {
        return Err(WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));
    }
    let text = String::from_utf8_lossy(&body);
    let Some(parsed) = dsn::parse(&text) else { return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "report_unreadable")) };
    let suppressed = state.messaging.apply_report(&parsed, state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(ReportOutcome { suppressed })))
}

struct CampaignView {
    id: String,
    kind: String,
    subject: String,
    created: String,
    queued: i64,
    finished: bool,
    counts: Vec<(String, i64)>,
}

struct PartnerView {
    id: String,
    name: String,
    exports: Vec<(String, String, i64, String)>,
}

#[derive(Template)]
#[template(path = "staff_messages.html")]
struct StaffMessagesPage {
    chrome: Chrome,
    csrf: String,
    campaigns: Vec<CampaignView>,
    partners: Vec<PartnerView>,
    refused: i64,
}

fn campaign_view(p: Progress, t: Texts) -> CampaignView {
    let lang_en = t.lang() == passme_messages::Lang::En;
    let c = &p.campaign;
    CampaignView {
        id: c.id.clone(),
        kind: match Kind::parse(&c.kind) {
            Some(Kind::Service) => t.staff_messages_kind_service(),
            Some(Kind::Maintenance) => t.staff_messages_kind_maintenance(),
            Some(Kind::Marketing) => t.staff_messages_kind_marketing(),
            None => "?",
        }
        .to_string(),
        subject: if lang_en { c.subject_en.clone() } else { c.subject_da.clone() },
        created: when(c.created_at),
        queued: c.queued,
        finished: c.finished_at.is_some(),
        counts: p.statuses.iter().map(|(status, n)| (t.message_status(status).map_or(status.clone(), str::to_string), *n)).collect(),
    }
}

/// Announcements with their progress, and partner exports.
pub async fn staff_page(State(state): State<AppState>, ctx: PageContext, staff: Staff<Communicators>) -> Result<Response, WebError> {
    let _ = &staff.session;
    let campaigns = state.messaging.campaigns.recent().await?.into_iter().map(|p| campaign_view(p, ctx.t)).collect();
    let mut partners = Vec::new();
    for p in state.messaging.partners.list() {
        let exports = state
            .messaging
            .partners
            .exports(&p.id)
            .await?
            .into_iter()
            .map(|e| {
                (when(e.created_at), e.requested_by, e.people, ctx.t.message_status(&e.status).map_or(e.status.clone(), str::to_string))
            })
            .collect();
        partners.push(PartnerView { id: p.id.clone(), name: p.name.clone(), exports });
    }
    let refused = state.messaging.outbox.refused_without_consent().await?;
    let body = StaffMessagesPage {
        chrome: Chrome::new(&state, &ctx, ctx.t.staff_messages_heading(), false),
        csrf: ctx.csrf_token(&state),
        campaigns,
        partners,
        refused,
    };
    Ok(page(&ctx, &state, true, &body))
}

#[derive(Debug, Deserialize)]
pub struct AnnounceInput {
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    push: Option<String>,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    active_days: String,
    #[serde(default)]
    subject_da: String,
    #[serde(default)]
    subject_en: String,
    #[serde(default)]
    body_da: String,
    #[serde(default)]
    body_en: String,
}

crate::csrf_protected!(AnnounceInput);

pub async fn announce(
    State(state): State<AppState>,
    staff: Staff<Communicators>,
    CsrfForm(input): CsrfForm<AnnounceInput>,
) -> Result<Response, WebError> {
    let kind = Kind::parse(&input.kind).ok_or(WebError::bad_request("announcement_kind_invalid"))?;
    let mut channels = Vec::new();
    if input.email.is_some() {
        channels.push(Channel::Email);
    }
    if input.push.is_some() {
        channels.push(Channel::Push);
    }
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let active_within_days = match non_empty(&input.active_days) {
        Some(days) => Some(days.parse::<i64>().map_err(|_| WebError::bad_request("segment_invalid"))?),
        None => None,
    };
    let segment = Segment { plan: non_empty(&input.plan), lang: non_empty(&input.lang), active_within_days };
    let new = NewCampaign {
        kind,
        segment,
        channels,
        subject_da: input.subject_da,
        subject_en: input.subject_en,
        body_da: input.body_da,
        body_en: input.body_en,
    };
    state.messaging.campaigns.create(&format!("staff:{}", staff.session.account_id), new).await?;
    Ok(Redirect::to("/staff/messages?done=announced").into_response())
}

#[derive(Debug, Deserialize)]
pub struct ExportInput {
    csrf: String,
    #[serde(default)]
    partner: String,
}

crate::csrf_protected!(ExportInput);

pub async fn export_audience(
    State(state): State<AppState>,
    staff: Staff<Communicators>,
    CsrfForm(input): CsrfForm<ExportInput>,
) -> Result<Response, WebError> {
    state.messaging.partners.export(&format!("staff:{}", staff.session.account_id), &input.partner).await?;
    Ok(Redirect::to("/staff/messages?done=exported").into_response())
}

/// The service worker: shows a push message and opens its link on a click. Served from the root
/// so its scope is the whole site.
pub async fn service_worker() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], include_str!("../../static/sw.js"))
}

/// The account page's script that subscribes this browser to push.
pub async fn push_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/push.js"),
    )
}
